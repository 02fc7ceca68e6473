#!/usr/bin/env bash
# VirtualBox NAT port forwarding: SLAM clients -> the host's port 12345 -> the VM.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: scripts/nat-virtualbox.sh --vm NAME [options]                  add the rule
       scripts/nat-virtualbox.sh --vm NAME --undo                     remove it
       scripts/nat-virtualbox.sh --natnetwork NET --guest-ip IP [...]  NAT Network variant

Run it ON THE HOST (the SISR PC), as the user who owns the VM (no root needed).
On Windows use Git Bash, or type the VBoxManage commands it prints in PowerShell.

With the VM's adapter in "NAT" mode (VirtualBox's default), the VM is 10.0.2.15
behind the host and nothing on the LAN can reach it until a port forwarding rule
exists:
  running VM:  VBoxManage controlvm VM natpf1 "classcord,tcp,,12345,,12345"
  stopped VM:  VBoxManage modifyvm VM --natpf1 "classcord,tcp,,12345,,12345"
With a "NAT Network" adapter the rule belongs to the network:
  VBoxManage natnetwork modify --netname NET --port-forward-4 "classcord:tcp:[]:12345:[GUEST_IP]:12345"
Bridged adapters need no forwarding: SLAM clients use the VM's own LAN address.

Options:
  --vm NAME          the VM's name or UUID (see: VBoxManage list vms)
  --adapter N        which of the VM's adapters is the NAT one (default 1)
  --natnetwork NET   add the rule to this NAT Network instead (VBoxManage natnetwork list)
  --guest-ip IP      the VM's address: required with --natnetwork; with plain NAT
                     leave it out (VirtualBox uses the VM's DHCP address, 10.0.2.15)
  --port N           port on the host, the one SLAM clients use (default 12345)
  --guest-port N     port in the VM (default 12345)
  --host-ip IP       accept only on this host address (default: every address)
  --rule NAME        rule name (default classcord)
  --undo             remove the rule
  --dry-run          print the commands, change nothing
  -h, --help         this help
Environment: VBOXMANAGE=/path/to/VBoxManage if it is not on PATH.

Then give the SLAM students the HOST's LAN address (printed at the end), never
10.0.2.15. Inside the VM every client appears as 10.0.2.2: the VM's firewall must
allow 10.0.2.2 (scripts/vm-firewall.sh does by default).
USAGE
}

VM=
ADAPTER=1
NATNET=
GUEST_IP=
PORT=12345
GUEST_PORT=12345
HOST_IP=
RULE=classcord
ACTION=add
DRY_RUN=0

die() { echo "nat-virtualbox.sh: $*" >&2; exit 1; }
log() { echo "nat-virtualbox.sh: $*"; }

while [ "$#" -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --vm) VM=${2:?--vm needs a value}; shift ;;
        --adapter) ADAPTER=${2:?--adapter needs a value}; shift ;;
        --natnetwork) NATNET=${2:?--natnetwork needs a value}; shift ;;
        --guest-ip) GUEST_IP=${2:?--guest-ip needs a value}; shift ;;
        --port) PORT=${2:?--port needs a value}; shift ;;
        --guest-port) GUEST_PORT=${2:?--guest-port needs a value}; shift ;;
        --host-ip) HOST_IP=${2:?--host-ip needs a value}; shift ;;
        --rule) RULE=${2:?--rule needs a value}; shift ;;
        --undo) ACTION=undo ;;
        --dry-run) DRY_RUN=1 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
    shift
done

valid_port() { [[ "$1" =~ ^[0-9]{1,5}$ ]] && [ "$1" -ge 1 ] && [ "$1" -le 65535 ]; }
valid_ip() { [[ "$1" =~ ^([0-9]{1,3}\.){3}[0-9]{1,3}$ ]]; }
valid_port "$PORT" || die "bad --port: $PORT"
valid_port "$GUEST_PORT" || die "bad --guest-port: $GUEST_PORT"
[[ "$ADAPTER" =~ ^[1-8]$ ]] || die "--adapter must be 1 to 8"
[[ "$RULE" =~ ^[A-Za-z0-9_-]+$ ]] || die "--rule: letters, digits, - and _ only"
[ -z "$GUEST_IP" ] || valid_ip "$GUEST_IP" || die "bad --guest-ip: $GUEST_IP"
[ -z "$HOST_IP" ] || valid_ip "$HOST_IP" || die "bad --host-ip: $HOST_IP"
if [ -n "$NATNET" ]; then
    [ -z "$VM" ] || die "give either --vm or --natnetwork, not both"
    [ "$ACTION" = undo ] || [ -n "$GUEST_IP" ] || die "--natnetwork needs --guest-ip (the VM's address: ip -4 addr in the VM)"
else
    [ -n "$VM" ] || die "--vm NAME is required (see: VBoxManage list vms)"
fi

find_vboxmanage() {
    if [ -n "${VBOXMANAGE:-}" ]; then echo "$VBOXMANAGE"; return; fi
    local candidate
    for candidate in VBoxManage vboxmanage VBoxManage.exe \
        "/c/Program Files/Oracle/VirtualBox/VBoxManage.exe" \
        "/Applications/VirtualBox.app/Contents/MacOS/VBoxManage"; do
        if command -v "$candidate" >/dev/null 2>&1; then echo "$candidate"; return; fi
    done
    return 1
}
NO_VBM=0
if ! VBM=$(find_vboxmanage); then
    [ "$DRY_RUN" -eq 1 ] || die "VBoxManage not found: install VirtualBox, or set VBOXMANAGE=/path/to/VBoxManage"
    # A dry run shows the commands even where VirtualBox is not installed.
    VBM=VBoxManage
    NO_VBM=1
fi

# One word as PowerShell (and bash) read it: plain words as they are, others in
# single quotes (a quote inside doubled). A VM name is always quoted.
ps_word() {
    if [[ "$1" =~ ^[A-Za-z0-9_./=-]+$ ]] && [ "${2:-}" != always ]; then
        printf '%s' "$1"
    else
        printf "'%s'" "${1//\'/\'\'}"
    fi
}

# The command as it can be pasted into PowerShell: a quoted program path needs
# the call operator (&).
show() {
    local line word
    line=$(ps_word "$VBM")
    [[ "$line" != \'* ]] || line="& $line"
    for word in "$@"; do
        if [ "$word" = "$VM" ]; then
            line+=" $(ps_word "$word" always)"
        else
            line+=" $(ps_word "$word")"
        fi
    done
    echo "+ $line"
}

run() {
    show "$@"
    if [ "$DRY_RUN" -eq 0 ]; then "$VBM" "$@"; fi
}

# The value of KEY in `showvminfo --machinereadable` output (quotes removed).
info_value() {
    awk -F= -v k="$1" '$1 == k { v = substr($0, length(k) + 2); gsub(/^"|"$/, "", v); print v; exit }'
}

port_in_use() {
    local port=$1
    if command -v ss >/dev/null 2>&1; then
        [ -n "$(ss -Htln "sport = :$port" 2>/dev/null)" ]
    elif command -v lsof >/dev/null 2>&1; then
        lsof -nP -iTCP:"$port" -sTCP:LISTEN >/dev/null 2>&1
    elif command -v netstat >/dev/null 2>&1; then
        local table
        table=$(netstat -an 2>/dev/null || true)
        grep -Eiq "[:.]${port}[[:space:]].*(LISTEN|ECOUTE)" <<<"$table"
    else
        return 1
    fi
}

host_addresses() {
    if command -v ip >/dev/null 2>&1; then
        ip -o -4 addr show scope global | awk '$2 !~ /^(docker|br-|virbr|vboxnet|vmnet|veth)/ { split($4, a, "/"); print a[1] " (" $2 ")" }'
    elif command -v ipconfig >/dev/null 2>&1 && [[ "$(ipconfig 2>/dev/null || true)" == *IPv4* ]]; then
        ipconfig | tr -d '\r' | awk '/adapter/ { name = $0 } /IPv4/ { sub(/.*: */, ""); if (name !~ /VirtualBox|VMware|vEthernet/) print $0 "  (" name ")" }'
    elif command -v ifconfig >/dev/null 2>&1; then
        ifconfig | awk '/^[a-z]/ { dev = $1 } /inet / && $2 != "127.0.0.1" && dev !~ /^(vboxnet|vmnet|bridge|utun)/ { print $2 " (" dev ")" }'
    fi
}

# Rules of this VM's adapter, as "name,tcp,hostip,hostport,guestip,guestport".
vm_rules() {
    "$VBM" showvminfo "$VM" --machinereadable 2>/dev/null \
        | awk -F= '/^Forwarding\(/ { v = substr($0, index($0, "=") + 1); gsub(/^"|"$/, "", v); print v }'
}

finish_message() {
    if [ "$DRY_RUN" -eq 1 ]; then
        log "dry run, nothing changed"
        return 0
    fi
    echo
    log "done. Give the SLAM students the HOST's LAN address, port $PORT:"
    local addrs line
    addrs=$(host_addresses || true)
    if [ -n "$addrs" ]; then
        while IFS= read -r line; do echo "    $line"; done <<<"$addrs"
    else
        echo "    (see ipconfig on Windows, ip -4 addr on Linux: the 10.0.108.x address)"
    fi
    log "not 10.0.2.15: that address only exists inside VirtualBox."
    log "in the VM, clients arrive from 10.0.2.2: allow it (sudo scripts/vm-firewall.sh)."
    log "Windows host: allow the port in Windows Defender Firewall (nat-windows-portproxy.ps1 -FirewallOnly)."
    log "test from a SLAM PC: Test-NetConnection <address> -Port $PORT   (Linux: nc -vz <address> $PORT)"
}

do_natnetwork() {
    local networks
    networks=$("$VBM" natnetwork list 2>/dev/null || true)
    grep -Eq "^(Name|NetworkName):[[:space:]]+$NATNET\$" <<<"$networks" \
        || [ "$DRY_RUN" -eq 1 ] || die "no NAT Network named '$NATNET' (see: $VBM natnetwork list)"
    if [ "$ACTION" = undo ]; then
        run natnetwork modify --netname "$NATNET" --port-forward-4 delete "$RULE"
        if [ "$DRY_RUN" -eq 1 ]; then log "dry run, nothing changed"; return; fi
        log "rule '$RULE' removed from NAT Network $NATNET"
        return
    fi
    if port_in_use "$PORT"; then
        die "port $PORT is already in use on this host: stop that program or choose --port"
    fi
    # Replace an earlier rule of the same name (ignore "not found").
    echo "$(show natnetwork modify --netname "$NATNET" --port-forward-4 delete "$RULE")   (if it exists)"
    if [ "$DRY_RUN" -eq 0 ]; then
        "$VBM" natnetwork modify --netname "$NATNET" --port-forward-4 delete "$RULE" >/dev/null 2>&1 || true
    fi
    run natnetwork modify --netname "$NATNET" \
        --port-forward-4 "$RULE:tcp:[$HOST_IP]:$PORT:[$GUEST_IP]:$GUEST_PORT"
    finish_message
}

do_vm_without_vboxmanage() {
    log "VBoxManage not found: the VM cannot be checked; the commands for a running VM"
    if [ "$ACTION" = undo ]; then
        show controlvm "$VM" "natpf$ADAPTER" delete "$RULE"
        log "(a stopped VM: $(show modifyvm "$VM" "--natpf$ADAPTER" delete "$RULE"))"
    else
        show controlvm "$VM" "natpf$ADAPTER" "$RULE,tcp,$HOST_IP,$PORT,$GUEST_IP,$GUEST_PORT"
        log "(a stopped VM: $(show modifyvm "$VM" "--natpf$ADAPTER" "$RULE,tcp,$HOST_IP,$PORT,$GUEST_IP,$GUEST_PORT"))"
    fi
    log "dry run, nothing changed"
}

do_vm() {
    if [ "$NO_VBM" -eq 1 ]; then do_vm_without_vboxmanage; return; fi
    local info state nic
    info=$("$VBM" showvminfo "$VM" --machinereadable 2>/dev/null) \
        || die "no VM named '$VM' (see: $VBM list vms)"
    state=$(info_value VMState <<<"$info")
    nic=$(info_value "nic$ADAPTER" <<<"$info")
    case "$nic" in
        nat) ;;
        bridged) die "adapter $ADAPTER of '$VM' is bridged: no forwarding needed, SLAM clients use the VM's own LAN address (ip -4 addr in the VM)" ;;
        natnetwork) die "adapter $ADAPTER of '$VM' is on a NAT Network: use --natnetwork $(info_value "nat-network$ADAPTER" <<<"$info") --guest-ip <VM address>" ;;
        hostonly) die "adapter $ADAPTER of '$VM' is host-only: the LAN cannot reach it; add a NAT adapter or use nat-windows-portproxy.ps1 on a Windows host" ;;
        *) die "adapter $ADAPTER of '$VM' is '$nic', not NAT (VirtualBox: Settings > Network; or use --adapter)" ;;
    esac
    local verb=(modifyvm "$VM" "--natpf$ADAPTER")
    case "$state" in
        running|paused) verb=(controlvm "$VM" "natpf$ADAPTER") ;;
        saved) die "'$VM' is in a saved state: start it, or discard the saved state, then run this again" ;;
    esac

    local existing
    existing=$(vm_rules | awk -F, -v r="$RULE" '$1 == r')
    if [ "$ACTION" = undo ]; then
        if [ -z "$existing" ]; then
            log "no rule '$RULE' on '$VM'"
            return
        fi
        run "${verb[@]}" delete "$RULE"
        if [ "$DRY_RUN" -eq 1 ]; then log "dry run, nothing changed"; return; fi
        log "rule '$RULE' removed from '$VM'"
        return
    fi

    local clash
    clash=$(vm_rules | awk -F, -v r="$RULE" -v p="$PORT" '$1 != r && $2 == "tcp" && $4 == p')
    [ -z "$clash" ] || die "'$VM' already forwards host port $PORT with another rule: $clash"
    # VirtualBox itself holds the port while our rule is active on a running VM.
    if [ -z "$existing" ] || [ "${verb[0]}" = modifyvm ]; then
        if port_in_use "$PORT"; then
            die "port $PORT is already in use on this host (another VM's rule, or a program): free it or choose --port"
        fi
    fi
    if [ -n "$existing" ]; then
        run "${verb[@]}" delete "$RULE"
    fi
    run "${verb[@]}" "$RULE,tcp,$HOST_IP,$PORT,$GUEST_IP,$GUEST_PORT"
    if [ "${verb[0]}" = modifyvm ]; then
        log "the VM is stopped: the rule applies when it starts"
    fi
    finish_message
}

if [ -n "$NATNET" ]; then do_natnetwork; else do_vm; fi
