#!/usr/bin/env bash
# A simulated classroom built from Linux network namespaces: a SLAM PC, a second
# LAN PC, the SISR student's host and the Linux VM (with its own ufw and, on
# request, its own Docker daemon). Nothing in it is connected to the real network.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: scripts/classroom-lab.sh COMMAND [--name LAB] [options]

Builds a classroom out of network namespaces, for teaching and for the tests.
Nothing is connected to the machine's real network, its firewall or its Docker.

                LAN 10.0.108.0/24 (a bridge in namespace LAB-lan)
   LAB-slam  10.0.108.20 --+
   LAB-other 10.0.108.66 --+-- 10.0.108.90 LAB-host 10.0.2.2 --- 10.0.2.15 LAB-vm
                           |        (SISR host)    "NAT" link      (Linux VM)
                           +-- 10.0.108.150 LAB-vm, in bridged mode instead

Commands:
  up [--mode nat|bridged] [--docker]
                   create the namespaces (default mode: nat); --docker also
                   starts a private Docker daemon inside the VM namespace
  down [--all]     remove everything the lab created (safe to run twice); --all
                   removes every lab listed by 'list' (leftovers of a killed run;
                   it also removes labs other runs are still using)
  mode nat|bridged move the VM between NAT (behind the host) and bridged (on the LAN)
  docker-start     start the lab's Docker daemon in the VM namespace
  docker-stop      stop it (containers with a restart policy come back on start)
  vm-reboot        simulate a VM reboot where ufw starts before Docker: stop
                   Docker, kill the VM's processes, flush its netfilter tables,
                   run ufw's boot script, start Docker again
  base-image       put the stand-in base image in the lab daemon: copied from
                   the host's Docker if it has it, else built there by
                   scripts/build-base-image.sh
  compose ARGS...  run the repository's docker-compose.yml against the lab
                   daemon (e.g. compose up -d --build), with an env file of
                   the lab's own (CLASSCORD_BIND=0.0.0.0, CLASSCORD_PORT=12345;
                   variables of the environment win, as with any Compose)
  ufw ARGS...      run ufw inside the VM on the lab's private copy of its config
  ufw-reset        undo scripts/vm-firewall.sh, stop ufw, start again from a
                   fresh copy of the configuration
  exec ROLE CMD... run CMD in a namespace; ROLE is slam, other, host, vm or lan
  env              print shell variables describing the lab (for scripts/tests)
  status           show the lab's namespaces, addresses, routes and daemons
  list             list the labs that exist on this machine

Options:
  --name LAB   lab name, 2-12 characters [a-z0-9-] (default: cc-lab); the
               namespaces are LAB-lan, LAB-slam, LAB-other, LAB-host, LAB-vm
  --compose CMD  the Compose for 'compose', e.g. "docker compose" or
               docker-compose (default: CLASSCORD_COMPOSE, else whichever
               answers `version` with the newest Compose; it is printed)
  --dry-run    print the commands that change something, run nothing
  -h, --help   this help

State (ufw copy, Docker data, logs) lives in /run/classcord-lab/LAB.
Needs root, iproute2 and, for the firewall, ufw; for --docker, dockerd and containerd.
Example:
  scripts/classroom-lab.sh up --docker
  scripts/classroom-lab.sh exec vm python3 -m classcord --host 0.0.0.0 &
  scripts/classroom-lab.sh exec host scripts/nat-linux-host.sh --vm-ip 10.0.2.15
  scripts/classroom-lab.sh exec slam nc -vz 10.0.108.90 12345
  scripts/classroom-lab.sh down
USAGE
}

LAB=cc-lab
MODE=nat
WITH_DOCKER=0
ALL=0
DRY_RUN=0
COMPOSE_CMD=${CLASSCORD_COMPOSE:-}
COMMAND=
ARGS=()

# Fixed classroom addresses (the same as a real classroom with VirtualBox NAT).
LAN_CIDR=24
SLAM_IP=10.0.108.20
OTHER_IP=10.0.108.66
HOST_LAN_IP=10.0.108.90
VM_BRIDGED_IP=10.0.108.150
HOST_NAT_IP=10.0.2.2
VM_NAT_IP=10.0.2.15
NAT_CIDR=24
DOCKER_BIP=172.29.0.1/24
DOCKER_POOL=base=172.29.64.0/18,size=24

STATE_ROOT=/run/classcord-lab
ROLES=(lan slam other host vm)
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$SCRIPT_DIR")

die() { echo "classroom-lab.sh: $*" >&2; exit 1; }
log() { echo "classroom-lab.sh: $*"; }
run() {
    echo "+ $*"
    if [ "$DRY_RUN" -eq 0 ]; then "$@"; fi
}

while [ "$#" -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --name) LAB=${2:?--name needs a value}; shift ;;
        --mode) MODE=${2:?--mode needs a value}; shift ;;
        --docker) WITH_DOCKER=1 ;;
        --all) ALL=1 ;;
        --compose) COMPOSE_CMD=${2:?--compose needs a command}; shift ;;
        --dry-run) DRY_RUN=1 ;;
        --) shift; ARGS+=("$@"); break ;;
        *)
            if [ -z "$COMMAND" ]; then
                COMMAND=$1
            elif [ "$COMMAND" = exec ] && [ "${#ARGS[@]}" -eq 0 ]; then
                ARGS+=("$1")  # the role
            else
                # The inner command (exec, ufw, compose) takes everything from here.
                ARGS+=("$@"); break
            fi
            ;;
    esac
    shift
done

[ -n "$COMMAND" ] || { usage >&2; exit 2; }
[[ "$LAB" =~ ^[a-z0-9][a-z0-9-]{1,11}$ ]] || die "lab name must be 2-12 characters [a-z0-9-]: $LAB"
case "$MODE" in nat|bridged) ;; *) die "--mode must be nat or bridged" ;; esac

STATE="$STATE_ROOT/$LAB"
UFW_ROOT="$STATE/ufw"
DOCKER_SOCK="$STATE/docker.sock"
CTR_DIR="$STATE/containerd"
CGROUP_PARENT="classcord-lab-$LAB"

ns() { echo "$LAB-$1"; }
ns_exists() { [ -e "/var/run/netns/$(ns "$1")" ]; }
need_root() { [ "$DRY_RUN" -eq 1 ] || [ "$(id -u)" -eq 0 ] || die "must run as root"; }
need_lab() { [ "$DRY_RUN" -eq 1 ] || [ -d "$STATE" ] || die "no lab named $LAB (see: $0 list)"; }
lab_docker() { docker -H "unix://$DOCKER_SOCK" "$@"; }

# --- building blocks --------------------------------------------------------

# Connect namespace A (interface IFA) and namespace B (interface IFB), no root-namespace names.
veth() {
    run ip link add "$2" netns "$(ns "$1")" type veth peer name "$4" netns "$(ns "$3")"
}

connect_vm() {
    local mode=$1
    if [ "$mode" = nat ]; then
        veth vm eth0 host vm0
        run ip -n "$(ns host)" addr add "$HOST_NAT_IP/$NAT_CIDR" dev vm0
        run ip -n "$(ns host)" link set vm0 up
        run ip -n "$(ns vm)" addr add "$VM_NAT_IP/$NAT_CIDR" dev eth0
        run ip -n "$(ns vm)" link set eth0 up
        run ip -n "$(ns vm)" route add default via "$HOST_NAT_IP"
    else
        veth vm eth0 lan p-vm
        run ip -n "$(ns lan)" link set p-vm master br0 up
        run ip -n "$(ns vm)" addr add "$VM_BRIDGED_IP/$LAN_CIDR" dev eth0
        run ip -n "$(ns vm)" link set eth0 up
    fi
    if [ "$DRY_RUN" -eq 0 ]; then echo "$mode" >"$STATE/mode"; fi
}

disconnect_vm() {
    if ip -n "$(ns vm)" link show eth0 >/dev/null 2>&1; then
        run ip -n "$(ns vm)" link del eth0
    fi
}

setup_ufw_copy() {
    # A private copy of ufw's configuration: `ufw --rootdir=R --datadir=R` then
    # reads and writes only R, so the machine's own firewall settings never change.
    run mkdir -p "$UFW_ROOT/etc/default" "$UFW_ROOT/lib"
    run cp -a /etc/ufw "$UFW_ROOT/etc/ufw"
    run cp -a /lib/ufw "$UFW_ROOT/lib/ufw"
    run cp -a /etc/default/ufw "$UFW_ROOT/etc/default/ufw"
    if [ -d /usr/share/ufw ]; then
        run mkdir -p "$UFW_ROOT/usr/share"
        run cp -a /usr/share/ufw "$UFW_ROOT/usr/share/ufw"
    fi
    run sed -i "s|^IPT_SYSCTL=.*|IPT_SYSCTL=$UFW_ROOT/etc/ufw/sysctl.conf|" "$UFW_ROOT/etc/default/ufw"
    run sed -i 's/^ENABLED=.*/ENABLED=no/' "$UFW_ROOT/etc/ufw/ufw.conf"
}

cmd_up() {
    need_root
    command -v ip >/dev/null || die "ip (iproute2) not found"
    [ "$DRY_RUN" -eq 1 ] || [ ! -e "$STATE" ] || die "lab $LAB already exists (run: $0 down --name $LAB)"
    for role in "${ROLES[@]}"; do
        if ns_exists "$role"; then die "namespace $(ns "$role") already exists"; fi
    done
    log "building lab $LAB (mode $MODE) in $STATE"
    run mkdir -p "$STATE"
    run chmod 700 "$STATE"
    for role in "${ROLES[@]}"; do
        run ip netns add "$(ns "$role")"
        run ip -n "$(ns "$role")" link set lo up
    done
    # The classroom switch.
    run ip -n "$(ns lan)" link add br0 type bridge
    run ip -n "$(ns lan)" link set br0 up
    local role ip
    for role in slam other host; do
        case "$role" in
            slam) ip=$SLAM_IP ;;
            other) ip=$OTHER_IP ;;
            host) ip=$HOST_LAN_IP ;;
        esac
        local ifname=eth0
        [ "$role" = host ] && ifname=lan0
        veth "$role" "$ifname" lan "p-$role"
        run ip -n "$(ns lan)" link set "p-$role" master br0 up
        run ip -n "$(ns "$role")" addr add "$ip/$LAN_CIDR" dev "$ifname"
        run ip -n "$(ns "$role")" link set "$ifname" up
    done
    # A fresh host does not route: enabling it is the NAT helper's job.
    run ip netns exec "$(ns host)" sysctl -q -w net.ipv4.ip_forward=0
    run ip netns exec "$(ns vm)" sysctl -q -w net.ipv4.ip_forward=0
    connect_vm "$MODE"
    if command -v ufw >/dev/null; then
        setup_ufw_copy
    else
        log "ufw not installed: the VM has no firewall"
    fi
    if [ "$WITH_DOCKER" -eq 1 ]; then
        cmd_docker_start
    fi
    if [ "$DRY_RUN" -eq 1 ]; then log "dry run: nothing was created"; return 0; fi
    log "lab $LAB is up; SLAM PC $(ns slam) $SLAM_IP, host $(ns host) $HOST_LAN_IP, VM $(ns vm) ($MODE)"
}

cmd_mode() {
    need_root; need_lab
    local mode=${ARGS[0]:-}
    case "$mode" in nat|bridged) ;; *) die "usage: $0 mode --name LAB nat|bridged" ;; esac
    disconnect_vm
    if [ "$DRY_RUN" -eq 0 ] && [ "$mode" = bridged ] && ip -n "$(ns host)" link show vm0 >/dev/null 2>&1; then
        run ip -n "$(ns host)" link del vm0
    fi
    connect_vm "$mode"
    # The VM's new interface has a new MAC address: forget the old one everywhere,
    # as a real network would after the VM announces itself.
    local role
    for role in slam other host; do
        run ip -n "$(ns "$role")" neigh flush all
    done
    log "VM is now in $mode mode"
}

# --- the lab's own Docker daemon ---------------------------------------------

write_containerd_config() {
    mkdir -p "$CTR_DIR/root" "$CTR_DIR/state" "$CTR_DIR/opt"
    cat >"$CTR_DIR/config.toml" <<EOF
version = 2
root = "$CTR_DIR/root"
state = "$CTR_DIR/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$CTR_DIR/containerd.sock"
[ttrpc]
  address = "$CTR_DIR/containerd.sock.ttrpc"
[debug]
  address = "$CTR_DIR/debug.sock"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$CTR_DIR/opt"
EOF
}

pid_alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
read_pid() { if [ -s "$1" ]; then cat "$1"; fi; }

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local deadline=$((SECONDS + $1)) what=$2
    shift 2
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || die "timed out waiting for $what"
        sleep 0.2
    done
}

cmd_docker_start() {
    need_root; need_lab
    command -v dockerd >/dev/null || die "dockerd not found (apt-get install docker.io)"
    command -v containerd >/dev/null || die "containerd not found"
    local netns
    netns="/var/run/netns/$(ns vm)"
    if pid_alive "$(read_pid "$STATE/dockerd.pid")"; then log "lab Docker already running"; return 0; fi
    if [ "$DRY_RUN" -eq 0 ]; then
        write_containerd_config
        mkdir -p "$STATE/docker" "$STATE/exec"
        echo '{}' >"$STATE/daemon.json"
    fi
    # nsenter --net (not `ip netns exec`): the daemon must see the real /sys and its
    # cgroups; only its network is the VM's.
    if ! pid_alive "$(read_pid "$STATE/containerd.pid")"; then
        echo "+ nsenter --net=$netns containerd --config $CTR_DIR/config.toml &"
        if [ "$DRY_RUN" -eq 0 ]; then
            setsid nsenter --net="$netns" containerd --config "$CTR_DIR/config.toml" \
                >>"$STATE/containerd.log" 2>&1 </dev/null &
            echo "$!" >"$STATE/containerd.pid"
            wait_for 30 "containerd" test -S "$CTR_DIR/containerd.sock"
        fi
    fi
    echo "+ nsenter --net=$netns dockerd --data-root $STATE/docker --exec-root $STATE/exec" \
        "--pidfile $STATE/dockerd.pid -H unix://$DOCKER_SOCK --bip $DOCKER_BIP ... &"
    if [ "$DRY_RUN" -eq 0 ]; then
        setsid nsenter --net="$netns" dockerd \
            --config-file "$STATE/daemon.json" \
            --data-root "$STATE/docker" \
            --exec-root "$STATE/exec" \
            --pidfile "$STATE/dockerd.pid" \
            -H "unix://$DOCKER_SOCK" \
            --containerd "$CTR_DIR/containerd.sock" \
            --bip "$DOCKER_BIP" \
            --default-address-pool "$DOCKER_POOL" \
            --cgroup-parent "$CGROUP_PARENT" \
            >>"$STATE/dockerd.log" 2>&1 </dev/null &
        wait_for 60 "the lab's dockerd (see $STATE/dockerd.log)" lab_docker version
        log "lab Docker running: docker -H unix://$DOCKER_SOCK"
    fi
}

stop_pid() {  # stop_pid PIDFILE NAME: TERM, wait up to 30 s, then KILL
    local pid
    pid=$(read_pid "$1")
    if ! pid_alive "$pid"; then
        if [ "$DRY_RUN" -eq 0 ]; then rm -f "$1"; fi
        return 0
    fi
    run kill -TERM "$pid"
    [ "$DRY_RUN" -eq 0 ] || return 0
    local deadline=$((SECONDS + 30))
    while pid_alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
    if pid_alive "$pid"; then run kill -KILL "$pid"; sleep 0.2; fi
    rm -f "$1"
}

cmd_docker_stop() {
    need_root
    [ -d "$STATE" ] || return 0
    stop_pid "$STATE/dockerd.pid" dockerd
    stop_pid "$STATE/containerd.pid" containerd
}

# Processes that belong to this lab but are not in its namespaces' pid lists:
# containerd shims and anything whose command line names the lab's state dir.
lab_pids() {
    local p cmd
    for p in /proc/[0-9]*; do
        cmd=$({ tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null || true)
        case "$cmd" in *"$STATE/"*) echo "${p#/proc/}" ;; esac
    done
}

cgroup_pids() {
    local d
    for d in /sys/fs/cgroup/*/"$CGROUP_PARENT" /sys/fs/cgroup/"$CGROUP_PARENT"; do
        [ -d "$d" ] || continue
        find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null || true
    done
}

remove_cgroups() {
    local d
    for d in /sys/fs/cgroup/*/"$CGROUP_PARENT" /sys/fs/cgroup/"$CGROUP_PARENT"; do
        [ -d "$d" ] || continue
        find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done
}

kill_all() {  # kill_all PID...: TERM, a short grace, then KILL
    [ "$#" -gt 0 ] || return 0
    run kill -TERM "$@" 2>/dev/null || true
    [ "$DRY_RUN" -eq 0 ] || return 0
    local deadline=$((SECONDS + 5)) p alive
    while [ "$SECONDS" -lt "$deadline" ]; do
        alive=0
        for p in "$@"; do if pid_alive "$p"; then alive=1; fi; done
        [ "$alive" -eq 1 ] || return 0
        sleep 0.2
    done
    run kill -KILL "$@" 2>/dev/null || true
}

cmd_down() {
    need_root
    log "removing lab $LAB"
    # 1. Containers and the lab's Docker daemon.
    if [ -S "$DOCKER_SOCK" ] && pid_alive "$(read_pid "$STATE/dockerd.pid")"; then
        local ids
        ids=$(timeout 20 docker -H "unix://$DOCKER_SOCK" ps -aq 2>/dev/null || true)
        if [ -n "$ids" ]; then
            # shellcheck disable=SC2086  # one id per word
            run timeout 60 docker -H "unix://$DOCKER_SOCK" rm -f $ids >/dev/null || true
        fi
    fi
    if [ -d "$STATE" ]; then cmd_docker_stop; fi
    # 2. Anything left: processes in the namespaces, shims, containers' cgroups.
    local pids=() role p
    for role in "${ROLES[@]}"; do
        if ns_exists "$role"; then
            while read -r p; do [ -n "$p" ] && pids+=("$p"); done < <(ip netns pids "$(ns "$role")" 2>/dev/null || true)
        fi
    done
    if [ -d "$STATE" ]; then
        while read -r p; do [ -n "$p" ] && pids+=("$p"); done < <(lab_pids)
    fi
    while read -r p; do [ -n "$p" ] && pids+=("$p"); done < <(cgroup_pids)
    kill_all "${pids[@]}"
    # 3. Mounts left under the state dir (overlay layers, netns bind mounts), deepest first.
    if [ -d "$STATE" ]; then
        local m
        while read -r m; do
            [ -n "$m" ] && run umount -l "$m" || true
        done < <(awk -v s="$STATE/" 'index($5, s) == 1 {print $5}' /proc/self/mountinfo | sort -r)
    fi
    # 4. Namespaces (their veths and the bridge go with them), cgroups, state.
    for role in "${ROLES[@]}"; do
        if ns_exists "$role"; then run ip netns del "$(ns "$role")"; fi
    done
    remove_cgroups
    if [ -d "$STATE" ]; then run rm -rf "$STATE"; fi
    if [ "$DRY_RUN" -eq 1 ]; then log "dry run: nothing was removed"; return 0; fi
    log "lab $LAB removed"
}

cmd_vm_reboot() {
    need_root; need_lab
    local had_docker=0
    if pid_alive "$(read_pid "$STATE/dockerd.pid")"; then had_docker=1; fi
    log "simulated reboot of $(ns vm): stop Docker, kill processes, flush netfilter"
    cmd_docker_stop
    local pids=() p
    while read -r p; do [ -n "$p" ] && pids+=("$p"); done < <(ip netns pids "$(ns vm)" 2>/dev/null || true)
    kill_all "${pids[@]}"
    # A fresh boot: empty tables, ACCEPT policies.
    local t
    for t in filter nat mangle raw; do
        run ip netns exec "$(ns vm)" iptables -t "$t" -F
        run ip netns exec "$(ns vm)" iptables -t "$t" -X
    done
    for t in INPUT FORWARD OUTPUT; do
        run ip netns exec "$(ns vm)" iptables -P "$t" ACCEPT
    done
    # ufw's boot script first (ufw.service runs before docker.service) ...
    if [ -x "$UFW_ROOT/lib/ufw/ufw-init" ]; then
        run ip netns exec "$(ns vm)" "$UFW_ROOT/lib/ufw/ufw-init" --rootdir "$UFW_ROOT" --datadir "$UFW_ROOT" start quiet
    fi
    # ... then Docker.
    if [ "$had_docker" -eq 1 ]; then cmd_docker_start; fi
}

# --- the ClassCord container -------------------------------------------------

BASE_IMAGE=classcord-base:bookworm-python3

cmd_base_image() {
    need_root; need_lab
    if [ "$DRY_RUN" -eq 0 ] && ! lab_docker version >/dev/null 2>&1; then
        die "the lab's Docker is not running (run: $0 docker-start --name $LAB)"
    fi
    if [ "$DRY_RUN" -eq 0 ] && lab_docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
        log "base image $BASE_IMAGE already in the lab daemon"
        return 0
    fi
    # Docker Hub is out of reach: copy the stand-in base image from the host's
    # Docker when it has one, else build it straight into the lab daemon.
    if timeout 10 docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
        echo "+ docker save $BASE_IMAGE | docker -H unix://$DOCKER_SOCK load"
        if [ "$DRY_RUN" -eq 0 ]; then docker save "$BASE_IMAGE" | lab_docker load; fi
    else
        [ -x "$SCRIPT_DIR/build-base-image.sh" ] || die "no $BASE_IMAGE image and no scripts/build-base-image.sh"
        run env DOCKER_HOST="unix://$DOCKER_SOCK" "$SCRIPT_DIR/build-base-image.sh" --image "$BASE_IMAGE"
    fi
}

# shellcheck source=scripts/lib/compose.sh
. "$SCRIPT_DIR/lib/compose.sh"

cmd_compose() {
    need_root; need_lab
    compose_pick classroom-lab.sh "$COMPOSE_CMD"
    # The repository's docker-compose.yml, against the lab daemon, with the
    # stand-in base image; an env file of the lab's own so that a local .env
    # changes nothing. The lab's Docker is 20.10: BuildKit only through buildx.
    local buildkit=0
    if docker buildx version >/dev/null 2>&1; then buildkit=1; fi
    echo "+ write $STATE/compose.env: CLASSCORD_BIND=0.0.0.0 CLASSCORD_PORT=12345"
    if [ "$DRY_RUN" -eq 0 ]; then
        printf 'CLASSCORD_BIND=0.0.0.0\nCLASSCORD_PORT=12345\n' >"$STATE/compose.env"
    fi
    run env DOCKER_HOST="unix://$DOCKER_SOCK" CLASSCORD_PYTHON_IMAGE="$BASE_IMAGE" \
        DOCKER_BUILDKIT="$buildkit" COMPOSE_DOCKER_CLI_BUILD="$buildkit" \
        "${COMPOSE[@]}" --project-directory "$REPO_DIR" -f "$REPO_DIR/docker-compose.yml" \
        --env-file "$STATE/compose.env" -p "$LAB" "${ARGS[@]}"
}

# --- small helpers ------------------------------------------------------------

cmd_ufw() {
    need_root; need_lab
    command -v ufw >/dev/null || die "ufw not installed"
    ip netns exec "$(ns vm)" ufw --rootdir="$UFW_ROOT" --datadir="$UFW_ROOT" "${ARGS[@]}"
}

cmd_ufw_reset() {
    # Back to a fresh install: the firewall script's undo, ufw stopped, a new
    # pristine copy of the configuration.
    need_root; need_lab
    if [ -d "$UFW_ROOT" ]; then
        run ip netns exec "$(ns vm)" "$SCRIPT_DIR/vm-firewall.sh" --rootdir "$UFW_ROOT" --undo >/dev/null
        run ip netns exec "$(ns vm)" ufw --rootdir="$UFW_ROOT" --datadir="$UFW_ROOT" disable >/dev/null
        run rm -rf "$UFW_ROOT"
    fi
    setup_ufw_copy >/dev/null
}

cmd_exec() {
    need_root; need_lab
    [ "${#ARGS[@]}" -ge 2 ] || die "usage: $0 exec --name LAB ROLE CMD..."
    local role=${ARGS[0]}
    case " ${ROLES[*]} " in *" $role "*) ;; *) die "unknown role: $role (${ROLES[*]})" ;; esac
    exec ip netns exec "$(ns "$role")" "${ARGS[@]:1}"
}

cmd_env() {
    need_lab
    local mode=nat
    if [ -s "$STATE/mode" ]; then mode=$(cat "$STATE/mode"); fi
    local vm_ip=$VM_NAT_IP
    [ "$mode" = bridged ] && vm_ip=$VM_BRIDGED_IP
    cat <<EOF
LAB=$LAB
LAB_STATE=$STATE
LAB_MODE=$mode
NS_LAN=$(ns lan)
NS_SLAM=$(ns slam)
NS_OTHER=$(ns other)
NS_HOST=$(ns host)
NS_VM=$(ns vm)
SLAM_IP=$SLAM_IP
OTHER_IP=$OTHER_IP
HOST_LAN_IP=$HOST_LAN_IP
HOST_NAT_IP=$HOST_NAT_IP
VM_IP=$vm_ip
VM_NAT_IP=$VM_NAT_IP
VM_BRIDGED_IP=$VM_BRIDGED_IP
UFW_ROOT=$UFW_ROOT
DOCKER_HOST=unix://$DOCKER_SOCK
EOF
}

cmd_status() {
    need_lab
    cmd_env
    local role
    for role in "${ROLES[@]}"; do
        echo "== $(ns "$role")"
        if ns_exists "$role"; then
            ip -n "$(ns "$role")" -br addr | grep -v '^lo ' || true
            ip -n "$(ns "$role")" route | sed 's/^/   route: /'
        else
            echo "   (missing)"
        fi
    done
    if pid_alive "$(read_pid "$STATE/dockerd.pid")"; then
        echo "== lab Docker: running (pid $(read_pid "$STATE/dockerd.pid"))"
        lab_docker ps --format '   {{.Names}} {{.Status}} {{.Ports}}' || true
    else
        echo "== lab Docker: not running"
    fi
}

cmd_list() {
    local d
    [ -d "$STATE_ROOT" ] || return 0
    for d in "$STATE_ROOT"/*/; do
        [ -d "$d" ] && basename "$d"
    done
    return 0
}

if [ "$COMMAND" = down ] && [ "$ALL" -eq 1 ]; then
    extra=()
    if [ "$DRY_RUN" -eq 1 ]; then extra=(--dry-run); fi
    for lab in $(cmd_list); do
        "$0" down --name "$lab" "${extra[@]}"
    done
    exit 0
fi

case "$COMMAND" in
    up) cmd_up ;;
    down) cmd_down ;;
    mode) cmd_mode ;;
    docker-start) cmd_docker_start ;;
    docker-stop) cmd_docker_stop ;;
    vm-reboot) cmd_vm_reboot ;;
    base-image) cmd_base_image ;;
    compose) cmd_compose ;;
    ufw) cmd_ufw ;;
    ufw-reset) cmd_ufw_reset ;;
    exec) cmd_exec ;;
    env) cmd_env ;;
    status) cmd_status ;;
    list) cmd_list ;;
    *) die "unknown command: $COMMAND (see --help)" ;;
esac
