#!/usr/bin/env bash
# Port forwarding on a Linux host: LAN clients -> this host:PORT -> the VM.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: sudo scripts/nat-linux-host.sh --vm-ip IP [options]     add the forward
       sudo scripts/nat-linux-host.sh --undo [--port N]         remove it

On a Linux host whose VM sits on a private network (libvirt/KVM, a VirtualBox
host-only network, ...), forwards TCP connections that arrive on this host's
port to the VM, like VirtualBox's NAT port forwarding does:
  1. nat PREROUTING:  DNAT  <this host>:PORT -> VM_IP:VM_PORT
  2. filter FORWARD:  ACCEPT the forwarded connection both ways
  3. nat POSTROUTING: MASQUERADE it, so the VM answers through this host (the VM
     then sees every client as this host's address on the VM network)
  4. sysctl net.ipv4.ip_forward=1 if it was 0 (set back to 0 by --undo)
Every rule carries the comment "classcord-nat-PORT"; --undo deletes exactly
those. Rules do not survive a reboot: run the script again (or save them with
iptables-persistent).

Options:
  --vm-ip IP       the VM's address as this host reaches it (e.g. 192.168.122.50)
  --port N         port the SLAM clients use on this host (default 12345)
  --vm-port N      port in the VM (default 12345)
  --lan-if IFACE   only forward connections arriving on IFACE (default: any)
  --no-masquerade  keep the clients' real addresses; the VM's default route
                   must then go through this host
  --force          add the forward even if something listens on the port here
  --undo           remove the forward for --port
  --dry-run        print the commands, change nothing
  -h, --help       this help

Afterwards, SLAM clients connect to THIS HOST's LAN address (printed at the end),
never to the VM's address. Test from a SLAM PC: nc -vz <address> 12345.
USAGE
}

VM_IP=
PORT=12345
VM_PORT=12345
LAN_IF=
MASQ=1
FORCE=0
ACTION=add
DRY_RUN=0

die() { echo "nat-linux-host.sh: $*" >&2; exit 1; }
log() { echo "nat-linux-host.sh: $*"; }
run() {
    echo "+ $*"
    if [ "$DRY_RUN" -eq 0 ]; then "$@"; fi
}

while [ "$#" -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --vm-ip) VM_IP=${2:?--vm-ip needs a value}; shift ;;
        --port) PORT=${2:?--port needs a value}; shift ;;
        --vm-port) VM_PORT=${2:?--vm-port needs a value}; shift ;;
        --lan-if) LAN_IF=${2:?--lan-if needs a value}; shift ;;
        --no-masquerade) MASQ=0 ;;
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
TAG="classcord-nat-$PORT"
FWD_TAG="$TAG-restore-ip-forward"

if [ "$DRY_RUN" -eq 0 ]; then
    [ "$(id -u)" -eq 0 ] || die "must run as root (sudo $0 ...)"
    command -v iptables >/dev/null || die "iptables is not installed: sudo apt-get install iptables"
fi

# Line numbers of this script's rules in TABLE CHAIN, highest first.
tagged_lines() {
    iptables -t "$1" -L "$2" -n --line-numbers 2>/dev/null \
        | awk -v a="/* $TAG */" -v b="/* $TAG-" 'index($0, a) || index($0, b) { print $1 }' | sort -rn
}

delete_rules() {
    local table_chain table chain n found=0
    for table_chain in nat:PREROUTING nat:POSTROUTING filter:FORWARD; do
        table=${table_chain%%:*}
        chain=${table_chain#*:}
        for n in $(tagged_lines "$table" "$chain"); do
            run iptables -t "$table" -D "$chain" "$n"
            found=1
        done
    done
    [ "$found" -eq 1 ]
}

restore_needed() {
    local rules
    rules=$(iptables -S FORWARD 2>/dev/null || true)
    grep -q -- "$FWD_TAG" <<<"$rules"
}

# Forwards of other ports by this script (this port's rules do not count: a
# dry run leaves them in place, and the undo deletes them anyway).
other_forwards_left() {
    local rules
    rules=$(iptables -S FORWARD 2>/dev/null || true)
    grep -o -- "classcord-nat-[0-9]*" <<<"$rules" | grep -qvx -- "$TAG"
}

lan_addresses() {
    # Every global IPv4 address of this host except on the interface that leads
    # to the VM and on virtual bridges (Docker, libvirt, VirtualBox, VMware).
    local vm_dev=${1:-}
    ip -o -4 addr show scope global 2>/dev/null | while read -r _ dev _ addr _; do
        case "$dev" in
            "$vm_dev"|docker*|br-*|virbr*|vboxnet*|vmnet*|veth*) continue ;;
        esac
        if [ -n "$LAN_IF" ] && [ "$dev" != "$LAN_IF" ]; then continue; fi
        echo "${addr%/*} ($dev)"
    done
}

do_undo() {
    local restore=0
    if restore_needed; then restore=1; fi
    local found=0
    if delete_rules; then found=1; fi
    if [ "$restore" -eq 1 ] && ! other_forwards_left; then
        # This script had turned forwarding on: turn it off again.
        run sysctl -q -w net.ipv4.ip_forward=0
    fi
    if [ "$found" -eq 0 ]; then
        log "no forward of port $PORT to remove"
    elif [ "$DRY_RUN" -eq 1 ]; then
        log "dry run, nothing changed"
    else
        log "forward of port $PORT removed"
    fi
}

do_add() {
    [ -n "$VM_IP" ] || die "--vm-ip is required (the VM's address, e.g. from 'ip -4 addr' in the VM)"
    [[ "$VM_IP" =~ ^([0-9]{1,3}\.){3}[0-9]{1,3}$ ]] || die "--vm-ip must be an IPv4 address: $VM_IP"
    local route vm_dev
    route=$(ip -o route get "$VM_IP" 2>/dev/null) || die "no route from this host to $VM_IP: is the VM running and is that its address?"
    vm_dev=$(awk '{for (i = 1; i < NF; i++) if ($i == "dev") print $(i + 1)}' <<<"$route")
    case "$route" in
        local*) die "$VM_IP is an address of this host, not of the VM" ;;
    esac
    if [ -n "$LAN_IF" ] && ! ip link show "$LAN_IF" >/dev/null 2>&1; then
        die "no interface $LAN_IF (see: ip -br addr)"
    fi

    # Is the port already taken on this host? Then local tests would reach that
    # program instead, and students would chase the wrong problem.
    local listeners
    listeners=$(ss -Htln "sport = :$PORT" 2>/dev/null || true)
    if [ -n "$listeners" ]; then
        echo "$listeners" >&2
        ss -Htlnp "sport = :$PORT" 2>/dev/null >&2 || true
        if [ "$FORCE" -eq 0 ]; then
            die "port $PORT is already in use on this host (above); stop that program or use --port (or --force)"
        fi
        log "WARNING: port $PORT is in use here; forwarding anyway (--force)"
    fi
    local others
    others=$(iptables -t nat -S PREROUTING 2>/dev/null | grep -- "--dport $PORT " | grep -v -- "$TAG" || true)
    if [ -n "$others" ]; then
        log "WARNING: another DNAT rule already uses port $PORT:"
        echo "$others" >&2
    fi

    # Idempotent: replace an earlier forward of the same port.
    local restore=0
    if restore_needed; then restore=1; fi
    delete_rules || true

    local fwd
    fwd=$(sysctl -n net.ipv4.ip_forward)
    local fwd_comment=$TAG
    if [ "$fwd" = 0 ] || [ "$restore" -eq 1 ]; then fwd_comment=$FWD_TAG; fi

    local in_if=()
    if [ -n "$LAN_IF" ]; then in_if=(-i "$LAN_IF"); fi
    log "forwarding <this host>:$PORT -> $VM_IP:$VM_PORT (via $vm_dev)"
    run iptables -t nat -I PREROUTING 1 "${in_if[@]}" -p tcp -m addrtype --dst-type LOCAL --dport "$PORT" \
        -m comment --comment "$TAG" -j DNAT --to-destination "$VM_IP:$VM_PORT"
    run iptables -t filter -I FORWARD 1 -p tcp -d "$VM_IP" --dport "$VM_PORT" \
        -m conntrack --ctstate NEW,ESTABLISHED,RELATED -m comment --comment "$fwd_comment" -j ACCEPT
    run iptables -t filter -I FORWARD 2 -p tcp -s "$VM_IP" --sport "$VM_PORT" \
        -m conntrack --ctstate ESTABLISHED,RELATED -m comment --comment "$TAG" -j ACCEPT
    if [ "$MASQ" -eq 1 ]; then
        run iptables -t nat -I POSTROUTING 1 -p tcp -d "$VM_IP" --dport "$VM_PORT" \
            -m conntrack --ctstate DNAT -m comment --comment "$TAG" -j MASQUERADE
    else
        log "no masquerade: the VM must route its replies through this host"
    fi
    if [ "$fwd" = 0 ]; then
        run sysctl -q -w net.ipv4.ip_forward=1
    fi
    if [ "$DRY_RUN" -eq 1 ]; then
        log "dry run, nothing changed"
        return 0
    fi

    echo
    log "done. Give the SLAM students this host's LAN address, port $PORT:"
    local addrs line
    addrs=$(lan_addresses "$vm_dev")
    if [ -n "$addrs" ]; then
        while IFS= read -r line; do echo "    $line"; done <<<"$addrs"
    else
        echo "    (no LAN address found: check 'ip -br addr')"
    fi
    log "not $VM_IP: that address only exists behind this host."
    log "test from a SLAM PC: nc -vz <address> $PORT   (Windows: Test-NetConnection <address> -Port $PORT)"
    log "undo with: $0 --undo --port $PORT"
}

case "$ACTION" in
    add) do_add ;;
    undo) do_undo ;;
esac
