#!/usr/bin/env bash
# The VM's firewall with ufw, made to really protect a port that Docker publishes.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: sudo scripts/vm-firewall.sh [--source CIDR]... [options]   apply
       sudo scripts/vm-firewall.sh --undo [options]                remove it again
       sudo scripts/vm-firewall.sh --status [options]              show what is in place

Sets up ufw in the Linux VM so that only the classroom reaches ClassCord:
  1. default deny incoming, SSH kept open (so you do not lock yourself out);
  2. port 12345/tcp opened for each --source, for a server run directly
     (`ufw allow`) and for a Docker container (`ufw route allow`);
  3. a marked block in ufw's after.rules that makes ufw apply to Docker's
     published ports (see below), then `ufw reload` (or `ufw enable`).

Why step 3: Docker publishes a port by rewriting the destination (DNAT) before
ufw's INPUT rules run, and its own FORWARD rules accept the traffic. So
`ufw allow/deny 12345` alone does nothing for a container: the port stays open
to everyone. The block sends every new connection that reaches a published
port through ufw's route rules (chain DOCKER-USER, `-m conntrack --ctstate
DNAT`) and drops the rest. It is reloaded by `ufw reload`, is kept when Docker
restarts, and works whichever of ufw and Docker starts first at boot.

Options:
  --source CIDR   allowed source address or subnet; repeat for several.
                  Default: 10.0.108.0/24 (the classroom LAN) and 10.0.2.2
                  (VirtualBox NAT: every client arrives from 10.0.2.2)
  --port N        the ClassCord port; for Docker, the container's port (12345)
  --for WHAT      docker, plain (server without Docker) or both (default)
  --ssh-port N    SSH port kept open (default 22)
  --no-ssh        do not add the SSH rule
  --rootdir DIR   work on a private copy of ufw's configuration in DIR
                  (ufw --rootdir/--datadir); used by the classroom lab
  --undo          remove the block and the ClassCord rules, then reload; the SSH
                  rule and ufw's state are kept. Run this BEFORE `ufw disable`:
                  with the block in place and ufw stopped, the published port
                  is closed to everyone
  --status        print ufw's rules and the live DOCKER-USER chain
  --dry-run       print the commands, change nothing
  -h, --help      this help

Then test from a SLAM PC, not from inside the VM (which bypasses both the
host's forwarding and this firewall):
  nc -vz <host LAN address> 12345            (Linux)
  Test-NetConnection <host LAN address> -Port 12345   (Windows PowerShell)
USAGE
}

TAG=classcord-vm-firewall
SSH_TAG=classcord-ssh
BEGIN_MARK="# BEGIN $TAG"
END_MARK="# END $TAG"

SOURCES=()
PORT=12345
FOR=both
SSH_PORT=22
SSH=1
ROOTDIR=
ACTION=apply
DRY_RUN=0

die() { echo "vm-firewall.sh: $*" >&2; exit 1; }
log() { echo "vm-firewall.sh: $*"; }
run() {
    echo "+ $*"
    if [ "$DRY_RUN" -eq 0 ]; then "$@"; fi
}
# The closing line: what was done, or that a dry run changed nothing.
finished() {
    if [ "$DRY_RUN" -eq 1 ]; then log "dry run, nothing changed"; else log "done. $*"; fi
}

while [ "$#" -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --source) SOURCES+=("${2:?--source needs a value}"); shift ;;
        --port) PORT=${2:?--port needs a value}; shift ;;
        --for) FOR=${2:?--for needs a value}; shift ;;
        --ssh-port) SSH_PORT=${2:?--ssh-port needs a value}; shift ;;
        --no-ssh) SSH=0 ;;
        --rootdir) ROOTDIR=${2:?--rootdir needs a value}; shift ;;
        --undo) ACTION=undo ;;
        --status) ACTION=status ;;
        --dry-run) DRY_RUN=1 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
    shift
done

if [ "${#SOURCES[@]}" -eq 0 ]; then SOURCES=(10.0.108.0/24 10.0.2.2); fi
case "$FOR" in docker|plain|both) ;; *) die "--for must be docker, plain or both" ;; esac
valid_port() { [[ "$1" =~ ^[0-9]{1,5}$ ]] && [ "$1" -ge 1 ] && [ "$1" -le 65535 ]; }
valid_port "$PORT" || die "bad --port: $PORT"
valid_port "$SSH_PORT" || die "bad --ssh-port: $SSH_PORT"
for src in "${SOURCES[@]}"; do
    [[ "$src" =~ ^([0-9]{1,3}\.){3}[0-9]{1,3}(/([0-9]|[12][0-9]|3[0-2]))?$ ]] \
        || die "--source must be an IPv4 address or subnet (a.b.c.d or a.b.c.d/n): $src"
done

UFW=(ufw)
ETC=/etc
if [ -n "$ROOTDIR" ]; then
    ROOTDIR=$(cd "$ROOTDIR" && pwd) || die "no such directory: $ROOTDIR"
    UFW=(ufw "--rootdir=$ROOTDIR" "--datadir=$ROOTDIR")
    ETC="$ROOTDIR/etc"
fi
AFTER_RULES="$ETC/ufw/after.rules"

if [ "$DRY_RUN" -eq 0 ]; then
    [ "$(id -u)" -eq 0 ] || die "must run as root (sudo $0 ...)"
    command -v ufw >/dev/null || die "ufw is not installed: sudo apt-get install ufw"
    command -v iptables >/dev/null || die "iptables is not installed: sudo apt-get install iptables"
    [ -f "$AFTER_RULES" ] || die "no $AFTER_RULES: is ufw installed correctly?"
fi

ufw_active() {
    local status
    status=$("${UFW[@]}" status 2>/dev/null || true)
    grep -q '^Status: active' <<<"$status"
}

# The block, in iptables-restore syntax, as ufw loads after.rules. Declaring
# DOCKER-USER here creates it when ufw starts before Docker (Docker then keeps
# it and only adds its jump from FORWARD); redeclaring it on `ufw reload`
# flushes and refills it, so the rules never pile up.
block() {
    cat <<EOF
$BEGIN_MARK (written by scripts/vm-firewall.sh; remove it with: vm-firewall.sh --undo)
# Docker's published ports bypass ufw's INPUT rules. New connections reaching
# any published port (conntrack state DNAT) must match a 'ufw route allow' rule;
# everything else to a published port is dropped.
*filter
:DOCKER-USER - [0:0]
:ufw-user-forward - [0:0]
-A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment $TAG -j RETURN
-A DOCKER-USER -m conntrack --ctstate DNAT -m comment --comment $TAG -j ufw-user-forward
-A DOCKER-USER -m conntrack --ctstate DNAT -m limit --limit 3/min --limit-burst 10 -m comment --comment $TAG -j LOG --log-prefix "[UFW DOCKER BLOCK] "
-A DOCKER-USER -m conntrack --ctstate DNAT -m comment --comment $TAG -j DROP
-A DOCKER-USER -j RETURN
COMMIT
$END_MARK
EOF
}

has_block() { [ -f "$AFTER_RULES" ] && grep -qF "$BEGIN_MARK" "$AFTER_RULES"; }

# Remove the block (between the markers, markers included) from after.rules.
remove_block() {
    if ! has_block; then return 0; fi
    echo "+ remove the '$TAG' block from $AFTER_RULES"
    [ "$DRY_RUN" -eq 0 ] || return 0
    local tmp
    tmp=$(mktemp "$AFTER_RULES.XXXXXX")
    awk -v b="$BEGIN_MARK" -v e="$END_MARK" '
        index($0, b) == 1 { skip = 1; next }
        skip && index($0, e) == 1 { skip = 0; next }
        !skip { print }' "$AFTER_RULES" >"$tmp"
    chmod --reference="$AFTER_RULES" "$tmp"
    mv "$tmp" "$AFTER_RULES"
}

install_block() {
    remove_block
    echo "+ append the '$TAG' block to $AFTER_RULES:"
    block | sed 's/^/    /'
    [ "$DRY_RUN" -eq 0 ] || return 0
    block >>"$AFTER_RULES"
}

# Delete the ufw rules this script added (tagged with its comment), from the
# rules file, whether ufw is active or not.
delete_tagged_rules() {
    local line spec added
    added=$("${UFW[@]}" show added 2>/dev/null || true)
    while IFS= read -r line; do
        case "$line" in
            *"comment '$TAG'"*) ;;
            *) continue ;;
        esac
        spec=${line% comment *}
        spec=${spec#ufw }
        local words
        read -r -a words <<<"$spec"
        if [ "${words[0]}" = route ]; then
            run "${UFW[@]}" route delete "${words[@]:1}"
        else
            run "${UFW[@]}" delete "${words[@]}"
        fi
    done <<<"$added"
}

# Delete the block's rules from the live DOCKER-USER chain (ufw does not touch
# that chain once the block is gone from after.rules).
# Highest line number first, so each number stays right after the deletes
# before it: a dry run prints every one of them.
delete_live_block() {
    iptables -S DOCKER-USER >/dev/null 2>&1 || return 0
    local n
    for n in $(iptables -L DOCKER-USER -n --line-numbers 2>/dev/null \
        | awk -v t="/* $TAG */" 'index($0, t) { print $1 }' | sort -rn); do
        run iptables -D DOCKER-USER "$n"
    done
}

reload_or_enable() {
    if ufw_active; then
        run "${UFW[@]}" reload
    else
        run "${UFW[@]}" --force enable
    fi
}

check_docker_firewall_backend() {
    local conf=/etc/docker/daemon.json
    if [ -f "$conf" ] && grep -Eq '"iptables"[[:space:]]*:[[:space:]]*false' "$conf"; then
        log "WARNING: $conf has \"iptables\": false: Docker publishes through docker-proxy only; the 'ufw allow' rules apply"
    fi
    if [ -f "$conf" ] && grep -Eq '"firewall-backend"[[:space:]]*:[[:space:]]*"nftables"' "$conf"; then
        log "WARNING: Docker uses its nftables backend ($conf): there is no DOCKER-USER chain and this block does NOT protect published ports"
    fi
}

do_apply() {
    log "allowing port $PORT/tcp from: ${SOURCES[*]} (for: $FOR)"
    delete_tagged_rules
    run "${UFW[@]}" default deny incoming
    run "${UFW[@]}" default allow outgoing
    if [ "$SSH" -eq 1 ]; then
        run "${UFW[@]}" allow "$SSH_PORT/tcp" comment "$SSH_TAG"
    else
        log "no SSH rule (--no-ssh): make sure you are not connected over SSH"
    fi
    local src
    for src in "${SOURCES[@]}"; do
        if [ "$FOR" != docker ]; then
            run "${UFW[@]}" allow proto tcp from "$src" to any port "$PORT" comment "$TAG"
        fi
        if [ "$FOR" != plain ]; then
            run "${UFW[@]}" route allow proto tcp from "$src" to any port "$PORT" comment "$TAG"
        fi
    done
    if [ "$FOR" = plain ]; then
        remove_block
        delete_live_block
    else
        install_block
        check_docker_firewall_backend
    fi
    reload_or_enable
    if [ "$DRY_RUN" -eq 1 ]; then finished; return 0; fi
    if [ "$FOR" != plain ]; then
        local live
        live=$(iptables -S DOCKER-USER 2>/dev/null | grep -c -- "$TAG" || true)
        [ "$live" -ge 4 ] || die "the DOCKER-USER block is not active after reload (see: iptables -S DOCKER-USER)"
        if [[ "$(iptables -S FORWARD 2>/dev/null || true)" != *"-j DOCKER-USER"* ]]; then
            log "note: Docker is not running (no jump to DOCKER-USER yet); the block applies as soon as it starts"
        fi
    fi
    log "done. ufw is active; port $PORT/tcp is open only for: ${SOURCES[*]}"
    log "undo with: $0 --undo${ROOTDIR:+ --rootdir $ROOTDIR}   (always before 'ufw disable')"
    log "test from a SLAM PC: nc -vz <host LAN address> $PORT  /  Test-NetConnection <host LAN address> -Port $PORT"
}

do_undo() {
    delete_tagged_rules
    remove_block
    delete_live_block
    if ufw_active; then
        run "${UFW[@]}" reload
        finished "ufw stays active (SSH rule kept); 'ufw disable' is now safe"
    else
        finished "ufw is not active"
    fi
}

do_status() {
    "${UFW[@]}" status verbose || true
    if has_block; then
        echo "after.rules: the $TAG block is present ($AFTER_RULES)"
    else
        echo "after.rules: no $TAG block: ufw does not filter Docker's published ports"
    fi
    echo "live DOCKER-USER chain:"
    iptables -S DOCKER-USER 2>/dev/null | sed 's/^/    /' || echo "    (none: Docker not running and no block loaded)"
}

case "$ACTION" in
    apply) do_apply ;;
    undo) do_undo ;;
    status) do_status ;;
esac
