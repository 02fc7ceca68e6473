#!/usr/bin/env bash
# The whole test suite, set-up included: system packages (when root), the venv,
# lint, type checks and pytest. Usage: scripts/test.sh [pytest args...]
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: scripts/test.sh [--dry-run] [--help] [PYTEST_ARGS...]

Sets up everything the suite needs, then runs ruff, mypy --strict and pytest.
  - as root: installs missing Debian packages (docker.io, debootstrap, ufw,
    iptables, iproute2, conntrack) with apt-get;
  - creates .venv and installs the package with its dev and tool dependencies;
  - runs ruff check, ruff format --check, mypy --strict classcord, pytest.
Tests that need root, Docker or network namespaces skip when those are missing,
unless CLASSCORD_REQUIRE_SYSTEM_TESTS=1 (set by .ci/run), where they fail.
  --dry-run  print the set-up steps without running them
USAGE
}

DRY_RUN=0
PYTEST_ARGS=()
for arg in "$@"; do
    case "$arg" in
        -h|--help) usage; exit 0 ;;
        --dry-run) DRY_RUN=1 ;;
        *) PYTEST_ARGS+=("$arg") ;;
    esac
done

cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
APT_PACKAGES=(docker.io debootstrap ufw iptables iproute2 conntrack procps)

run() {
    echo "+ $*"
    if [ "$DRY_RUN" -eq 0 ]; then "$@"; fi
}

install_system_packages() {
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "test.sh: not root or no apt-get: system packages not installed (system tests may skip)"
        return 0
    fi
    local missing=()
    for pkg in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        run apt-get update -qq
        run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    fi
}

setup_venv() {
    local python=${PYTHON:-python3}
    local stamp="$VENV/.classcord-deps"
    local wanted
    wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
    if [ ! -x "$VENV/bin/python" ]; then
        run "$python" -m venv "$VENV"
    fi
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
        run "$VENV/bin/pip" install -q --upgrade pip
        run "$VENV/bin/pip" install -q -e ".[dev,tools]"
        # docker-compose 1.29 (Debian's v1) is only used to validate the compose
        # file; its metadata pins an old PyYAML that fails to build on 3.11.
        run "$VENV/bin/pip" install -q --no-deps "docker-compose==1.29.2"
        [ "$DRY_RUN" -eq 1 ] || echo "$wanted" > "$stamp"
    fi
}

setup_fail2ban_regex() {
    # fail2ban-regex checks the shipped filter against real log lines. Installing
    # the fail2ban package would start a service that touches the host firewall,
    # so its files are only unpacked into the venv.
    local target="$VENV/fail2ban"
    if [ -x "$VENV/bin/fail2ban-regex" ] || ! command -v apt-get >/dev/null 2>&1; then
        return 0
    fi
    local download
    download=$(mktemp -d)
    if (cd "$download" && run apt-get download -q fail2ban); then
        run dpkg-deb -x "$download"/fail2ban_*.deb "$target"
        if [ "$DRY_RUN" -eq 0 ]; then
            printf '#!/usr/bin/env bash\nPYTHONPATH="%s" exec "%s" "%s" "$@"\n' \
                "$target/usr/lib/python3/dist-packages" "$VENV/bin/python" \
                "$target/usr/bin/fail2ban-regex" > "$VENV/bin/fail2ban-regex"
            chmod +x "$VENV/bin/fail2ban-regex"
        fi
    else
        echo "test.sh: could not download fail2ban; the fail2ban-regex test will skip or fail"
    fi
    rm -rf "$download"
}

install_system_packages
setup_venv
setup_fail2ban_regex
[ "$DRY_RUN" -eq 0 ] || exit 0

export PATH="$VENV/bin:$PATH"
export PYTHONASYNCIODEBUG=1
echo "+ ruff check"; ruff check .
echo "+ ruff format --check"; ruff format --check .
echo "+ mypy --strict classcord"; mypy --strict classcord
echo "+ pytest"; exec python -m pytest "${PYTEST_ARGS[@]}"
