# shellcheck shell=bash
# Shared by the scripts that run Docker Compose (sourced, not run).
#
# compose_pick PROG [CMD]
#   Sets the array COMPOSE and COMPOSE_VERSION. CMD (from --compose or
#   CLASSCORD_COMPOSE) is used as given; without it, `docker compose` and
#   `docker-compose` are each asked `version --short` and the newest answers:
#   the name says nothing (on Debian 13, `docker-compose` is Compose v2).
#   Prints which one it uses. In a dry run a CMD that does not answer is kept.
# env_file_check PROG FILE
#   Stops with a message saying how to fix it when FILE (the .env) is missing
#   or sets COMPOSE_PROJECT_NAME, CLASSCORD_BIND or CLASSCORD_PORT to something
#   Compose would only answer with a cryptic error.
# Both expect DRY_RUN (0 or 1) to be set.

compose_version_of() {
    local -a cmd
    read -r -a cmd <<<"$1"
    local version
    version=$("${cmd[@]}" version --short 2>/dev/null | head -n 1) || return 1
    version=${version#v}
    [[ "$version" =~ ^[0-9]+\. ]] || return 1
    echo "$version"
}

compose_pick() {
    local prog=$1 wanted=${2:-}
    local best="" best_version="" candidate version
    if [ -n "$wanted" ]; then
        if version=$(compose_version_of "$wanted"); then
            best=$wanted best_version=$version
        elif [ "$DRY_RUN" -eq 1 ]; then
            best=$wanted best_version=unknown
        else
            echo "$prog: '$wanted' does not answer 'version --short': is it a Docker Compose?" >&2
            exit 1
        fi
    else
        for candidate in "docker compose" "docker-compose"; do
            version=$(compose_version_of "$candidate") || continue
            if [ -z "$best" ] || [ "${version%%.*}" -gt "${best_version%%.*}" ]; then
                best=$candidate best_version=$version
            fi
        done
        if [ -z "$best" ]; then
            echo "$prog: no Docker Compose found: install Debian's docker-compose package" \
                "(Debian 12: v1.29, Debian 13: v2) or give --compose CMD" >&2
            exit 1
        fi
    fi
    # shellcheck disable=SC2034  # COMPOSE and COMPOSE_VERSION are for the caller
    read -r -a COMPOSE <<<"$best"
    # shellcheck disable=SC2034
    COMPOSE_VERSION=$best_version
    local generation="v${best_version%%.*}"
    [ "$best_version" != unknown ] || generation="version unknown"
    echo "$prog: using $best (Compose $generation, $best_version)"
}

# The value of NAME in an env file as Compose reads it: the last NAME=value line,
# without surrounding quotes. Prints nothing and fails when NAME is not set.
env_file_value() {
    local file=$1 name=$2 line
    line=$(grep -E "^[[:space:]]*(export[[:space:]]+)?${name}[[:space:]]*=" "$file" | tail -n 1) || return 1
    line=${line#*=}
    line=${line%$'\r'}
    line=${line#\"}; line=${line%\"}
    line=${line#\'}; line=${line%\'}
    echo "$line"
}

env_file_check() {
    local prog=$1 file=$2 problems=() value
    if [ ! -f "$file" ]; then
        echo "$prog: $file is missing: make it from the example, then edit it:" >&2
        echo "    cp .env.example .env" >&2
        echo "  (without it Compose names the volume after the folder and looks for the" \
            "base image on Docker Hub)" >&2
        exit 2
    fi
    if grep -q $'\r' "$file"; then
        problems+=("Windows line endings (CRLF): fix with  sed -i 's/\\r\$//' $file")
    fi
    if value=$(env_file_value "$file" CLASSCORD_PORT); then
        if [[ "$value" =~ ^[0-9]+:[0-9]+$ ]]; then
            problems+=("CLASSCORD_PORT=$value: give the host port only (CLASSCORD_PORT=${value%%:*}); the container side is always 12345")
        elif [ -n "$value" ] && ! { [[ "$value" =~ ^[0-9]{1,5}$ ]] && [ "$value" -ge 1 ] && [ "$value" -le 65535 ]; }; then
            problems+=("CLASSCORD_PORT=$value: a port is a number from 1 to 65535 (default 12345)")
        fi
    else
        problems+=("CLASSCORD_PORT is not set: add CLASSCORD_PORT=12345 (see .env.example)")
    fi
    if value=$(env_file_value "$file" CLASSCORD_BIND); then
        if [ "$value" = localhost ]; then
            problems+=("CLASSCORD_BIND=localhost: write an address, 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)")
        elif ! [[ "$value" =~ ^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$ ]] ||
            [ "${BASH_REMATCH[1]}" -gt 255 ] || [ "${BASH_REMATCH[2]}" -gt 255 ] ||
            [ "${BASH_REMATCH[3]}" -gt 255 ] || [ "${BASH_REMATCH[4]}" -gt 255 ]; then
            problems+=("CLASSCORD_BIND=$value: an IPv4 address of this machine, e.g. 0.0.0.0 or 127.0.0.1, with no port")
        fi
    else
        problems+=("CLASSCORD_BIND is not set: add CLASSCORD_BIND=0.0.0.0 (see .env.example)")
    fi
    if value=$(env_file_value "$file" COMPOSE_PROJECT_NAME) && ! [[ "$value" =~ ^[a-z0-9][a-z0-9_-]*$ ]]; then
        problems+=("COMPOSE_PROJECT_NAME=$value: lower-case letters, digits, '-' and '_' only (default classcord)")
    fi
    if [ "${#problems[@]}" -gt 0 ]; then
        echo "$prog: $file has mistakes Compose would not explain:" >&2
        printf '  - %s\n' "${problems[@]}" >&2
        exit 2
    fi
}
