#!/usr/bin/env bash
# VMware NAT (vmnet8) port forwarding: SLAM clients -> the host's port -> the VM.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: sudo scripts/nat-vmware.sh --vm-ip IP [options]     add the forward
       sudo scripts/nat-vmware.sh --undo [options]         remove it

Run it ON THE HOST. VMware's NAT network (vmnet8) forwards ports listed in the
[incomingtcp] section of its nat.conf:
    12345 = 192.168.133.128:12345
This script adds that line (marked with a "# classcord" comment), then restarts
VMware's NAT service so it takes effect. The VM keeps running; its connections
through NAT are cut for a second.
  Linux (Workstation/Player): /etc/vmware/vmnet8/nat/nat.conf, vmware-networks
  macOS (Fusion):             /Library/Preferences/VMware Fusion/vmnet8/nat.conf, vmnet-cli
  Windows: use the Virtual Network Editor instead (run as administrator):
           VMnet8 > NAT Settings > Add: host port 12345, TCP, VM address, 12345.
           (Or, from an administrator Git Bash: --conf /c/ProgramData/VMware/vmnetnat.conf
           --restart 'net stop "VMware NAT Service" && net start "VMware NAT Service"'.)

Options:
  --vm-ip IP       the VM's address on vmnet8 (in the VM: ip -4 addr), e.g. 192.168.133.128
  --port N         port on the host, the one SLAM clients use (default 12345)
  --vm-port N      port in the VM (default 12345)
  --conf FILE      VMware's nat.conf (default: found for this system)
  --restart CMD    command that restarts VMware's NAT (default: found for this system)
  --no-restart     only edit the file
  --force          replace a line for the same port that this script did not write
  --undo           remove the line this script added, then restart
  --dry-run        print what would change, change nothing
  -h, --help       this help

Then give the SLAM students the HOST's LAN address (printed at the end), not the
VM's 192.168.x address. The VM sees clients as VMware's NAT device (usually x.x.x.2;
'sudo ss -tn sport = :12345' in the VM shows it):
allow it in the VM's firewall (scripts/vm-firewall.sh --source <that address>).
USAGE
}

VM_IP=
PORT=12345
VM_PORT=12345
CONF=
RESTART=
DO_RESTART=1
FORCE=0
ACTION=add
DRY_RUN=0
MARK="# classcord"

die() { echo "nat-vmware.sh: $*" >&2; exit 1; }
log() { echo "nat-vmware.sh: $*"; }

while [ "$#" -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --vm-ip) VM_IP=${2:?--vm-ip needs a value}; shift ;;
        --port) PORT=${2:?--port needs a value}; shift ;;
        --vm-port) VM_PORT=${2:?--vm-port needs a value}; shift ;;
        --conf) CONF=${2:?--conf needs a value}; shift ;;
        --restart) RESTART=${2:?--restart needs a value}; shift ;;
        --no-restart) DO_RESTART=0 ;;
        --force) FORCE=1 ;;
        --undo) ACTION=undo ;;
        --dry-run) DRY_RUN=1 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
    shift
done

valid_port() { [[ "$1" =~ ^[0-9]{1,5}$ ]] && [ "$1" -ge 1 ] && [ "$1" -le 65535 ]; }
valid_port "$PORT" || die "bad --port: $PORT"
valid_port "$VM_PORT" || die "bad --vm-port: $VM_PORT"
if [ "$ACTION" = add ]; then
    [ -n "$VM_IP" ] || die "--vm-ip is required (the VM's vmnet8 address: ip -4 addr in the VM)"
    [[ "$VM_IP" =~ ^([0-9]{1,3}\.){3}[0-9]{1,3}$ ]] || die "--vm-ip must be an IPv4 address: $VM_IP"
fi

FUSION_DIR="/Library/Preferences/VMware Fusion"
if [ -z "$CONF" ]; then
    for candidate in /etc/vmware/vmnet8/nat/nat.conf "$FUSION_DIR/vmnet8/nat.conf" \
        /c/ProgramData/VMware/vmnetnat.conf; do
        if [ -f "$candidate" ]; then CONF=$candidate; break; fi
    done
    [ -n "$CONF" ] || die "VMware's nat.conf not found: is VMware installed with a NAT network (vmnet8)? Give --conf FILE"
fi
[ -f "$CONF" ] || die "no such file: $CONF"
if [ -z "$RESTART" ]; then
    if command -v vmware-networks >/dev/null 2>&1; then
        RESTART="vmware-networks --stop && vmware-networks --start"
    elif [ -x "/Applications/VMware Fusion.app/Contents/Library/vmnet-cli" ]; then
        RESTART="'/Applications/VMware Fusion.app/Contents/Library/vmnet-cli' --stop && '/Applications/VMware Fusion.app/Contents/Library/vmnet-cli' --start"
    elif [ "$CONF" = /c/ProgramData/VMware/vmnetnat.conf ]; then
        RESTART='net stop "VMware NAT Service" && net start "VMware NAT Service"'
    fi
fi

# The line for our port in [incomingtcp], if any: "NUMBER:TEXT" (grep -n style).
port_line() {
    awk -v p="$PORT" '
        /^[[:space:]]*\[/ { section = $0; gsub(/[[:space:][\]]/, "", section) }
        section == "incomingtcp" && $0 !~ /^[[:space:]]*#/ {
            split($0, kv, "="); key = kv[1]; gsub(/[[:space:]]/, "", key)
            if (key == p) { print NR ":" $0; exit }
        }' "$CONF"
}

# Print the file without our marked line (the marker and the line after it).
without_ours() {
    awk -v m="$MARK port $PORT" '
        skip { skip = 0; next }
        index($0, m) == 1 { skip = 1; next }
        { print }' "$CONF"
}

write_conf() {  # write_conf NEWTEXT_FILE
    echo "+ update $CONF:"
    diff -u "$CONF" "$1" | sed '1,2d; s/^/    /' || true
    if [ "$DRY_RUN" -eq 0 ]; then
        [ -f "$CONF.classcord-backup" ] || cp -p "$CONF" "$CONF.classcord-backup"
        cat "$1" >"$CONF"
    fi
}

restart_nat() {
    if [ "$DO_RESTART" -eq 0 ]; then
        log "not restarting VMware's NAT (--no-restart): restart it yourself for the change to apply"
        return
    fi
    [ -n "$RESTART" ] || die "no way found to restart VMware's NAT service: restart VMware (or the host), or give --restart CMD"
    echo "+ $RESTART"
    if [ "$DRY_RUN" -eq 0 ]; then bash -c "$RESTART"; fi
}

host_addresses() {
    if command -v ip >/dev/null 2>&1; then
        ip -o -4 addr show scope global | awk '$2 !~ /^(docker|br-|virbr|vboxnet|vmnet|veth)/ { split($4, a, "/"); print a[1] " (" $2 ")" }'
    elif command -v ifconfig >/dev/null 2>&1; then
        ifconfig | awk '/^[a-z]/ { dev = $1 } /inet / && $2 != "127.0.0.1" && dev !~ /^(vboxnet|vmnet|bridge|utun)/ { print $2 " (" dev ")" }'
    fi
}

port_in_use() {
    if command -v ss >/dev/null 2>&1; then
        [ -n "$(ss -Htln "sport = :$1" 2>/dev/null)" ]
    elif command -v lsof >/dev/null 2>&1; then
        lsof -nP -iTCP:"$1" -sTCP:LISTEN >/dev/null 2>&1
    else
        return 1
    fi
}

TMP=$(mktemp)
trap 'rm -f "$TMP"' EXIT

if [ "$ACTION" = undo ]; then
    if ! grep -qF "$MARK port $PORT" "$CONF"; then
        log "no ClassCord forward of port $PORT in $CONF"
        exit 0
    fi
    without_ours >"$TMP"
    write_conf "$TMP"
    restart_nat
    if [ "$DRY_RUN" -eq 1 ]; then log "dry run, nothing changed"; exit 0; fi
    log "forward of port $PORT removed"
    exit 0
fi

grep -q '^[[:space:]]*\[incomingtcp\]' "$CONF" || die "$CONF has no [incomingtcp] section: is it VMware's NAT configuration?"
existing=$(port_line)
if [ -n "$existing" ] && ! grep -qF "$MARK port $PORT" "$CONF"; then
    [ "$FORCE" -eq 1 ] || die "$CONF already forwards port $PORT (line ${existing%%:*}: ${existing#*:}); use --force to replace it"
fi
if port_in_use "$PORT" && [ -z "$existing" ]; then
    die "port $PORT is already in use on this host: stop that program or choose --port"
fi
# Drop our old line (and, with --force, anyone's line for the port), then add ours
# right after the [incomingtcp] header.
without_ours | awk -v p="$PORT" -v force="$FORCE" -v m="$MARK port $PORT" -v l="$PORT = $VM_IP:$VM_PORT" '
    /^[[:space:]]*\[/ { section = $0; gsub(/[[:space:][\]]/, "", section) }
    section == "incomingtcp" && force == 1 && $0 !~ /^[[:space:]]*#/ {
        split($0, kv, "="); key = kv[1]; gsub(/[[:space:]]/, "", key)
        if (key == p) next
    }
    { print }
    /^[[:space:]]*\[incomingtcp\]/ { print m " (scripts/nat-vmware.sh --undo removes it)"; print l }
' >"$TMP"
write_conf "$TMP"
restart_nat
if [ "$DRY_RUN" -eq 1 ]; then log "dry run, nothing changed"; exit 0; fi

echo
log "done. Give the SLAM students this host's LAN address, port $PORT:"
addrs=$(host_addresses || true)
if [ -n "$addrs" ]; then
    while IFS= read -r line; do echo "    $line"; done <<<"$addrs"
else
    echo "    (see: ip -4 addr, or ifconfig)"
fi
log "not $VM_IP: that address only exists behind this host."
log "test from a SLAM PC: nc -vz <address> $PORT   (Windows: Test-NetConnection <address> -Port $PORT)"
