#!/usr/bin/env bash
# A class certificate authority and a server certificate for ClassCord's TLS port.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: scripts/tls-class-ca.sh --ip ADDRESS [--ip ADDRESS...] [--name DNS...] [options]
       scripts/tls-class-ca.sh --undo [--dir DIR]

Makes, with the openssl command line:
  1. once: a class CA (DIR/ca/ca.key, kept private, and DIR/ca.pem), valid 5 years;
     an existing CA is reused, so students' truststores stay valid;
  2. a server certificate signed by it (DIR/server/server.pem + server.key), whose
     subject alternative names hold every address students will type: give the
     Windows host's LAN address (behind NAT the clients connect to the host, not
     to the VM), the VM's bridged address, and any names;
  3. DIR/truststore.p12: a PKCS#12 truststore for Java clients (with keytool when
     it is installed; password given by --store-password, default "classcord");
  4. DIR/ca.pem: the PEM bundle for Python clients and `openssl s_client -CAfile`.
Then prints the certificate's SHA-256 fingerprint, to write on the board.

Give the server DIR/server/ (a read-only bind mount: see CONTAINERS.md), never
DIR/ca/: the CA key must stay out of the container and out of the image.

Options:
  --ip ADDRESS          an IP address students connect to (repeat)
  --name NAME           a DNS name students connect to (repeat)
  --dir DIR             where to write (default: ./tls)
  --days N              server certificate lifetime in days (default 397)
  --store-password PW   the Java truststore's password (default: classcord)
  --renew               make a new server certificate even if one exists
  --owner UID           give DIR/server/ to this user (10001: the container's
                        server user, which must read the key; needs root)
  --undo                remove what this script made in DIR (CA included)
  --dry-run             print the commands, change nothing
  -h, --help            this help
USAGE
}

DIR=./tls
DAYS=397
CA_DAYS=1826
STORE_PASSWORD=classcord
RENEW=0
OWNER=
ACTION="make"
DRY_RUN=0
IPS=()
NAMES=()

die() { echo "tls-class-ca.sh: $*" >&2; exit 1; }
log() { echo "tls-class-ca.sh: $*"; }
run() {
    echo "+ $*"
    if [ "$DRY_RUN" -eq 0 ]; then "$@"; fi
}

while [ "$#" -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --ip) IPS+=("${2:?--ip needs an address}"); shift ;;
        --name) NAMES+=("${2:?--name needs a name}"); shift ;;
        --dir) DIR=${2:?--dir needs a folder}; shift ;;
        --days) DAYS=${2:?--days needs a number}; shift ;;
        --store-password) STORE_PASSWORD=${2:?--store-password needs a value}; shift ;;
        --renew) RENEW=1 ;;
        --owner) OWNER=${2:?--owner needs a uid}; shift ;;
        --undo) ACTION=undo ;;
        --dry-run) DRY_RUN=1 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
    shift
done

[[ "$DAYS" =~ ^[0-9]+$ ]] && [ "$DAYS" -ge 1 ] || die "bad --days: $DAYS"
[ -z "$OWNER" ] || [[ "$OWNER" =~ ^[0-9]+$ ]] || die "bad --owner (a numeric uid): $OWNER"

if [ "$ACTION" = undo ]; then
    for path in "$DIR/ca" "$DIR/server" "$DIR/ca.pem" "$DIR/truststore.p12" "$DIR/ca.srl"; do
        if [ -e "$path" ]; then run rm -rf -- "$path"; fi
    done
    if [ -d "$DIR" ] && [ -z "$(ls -A "$DIR")" ]; then run rmdir -- "$DIR"; fi
    if [ "$DRY_RUN" -eq 1 ]; then log "dry run: nothing was removed"; fi
    exit 0
fi

[ "${#IPS[@]}" -gt 0 ] || [ "${#NAMES[@]}" -gt 0 ] || die "give at least one --ip or --name (see --help)"
command -v openssl >/dev/null || die "openssl is not installed: sudo apt-get install openssl"
valid_ip() {
    python3 -c 'import ipaddress, sys; ipaddress.ip_address(sys.argv[1])' "$1" 2>/dev/null
}
SAN=()
for ip in "${IPS[@]}"; do
    valid_ip "$ip" || die "not an IP address: $ip"
    SAN+=("IP:$ip")
done
for name in "${NAMES[@]}"; do
    [[ "$name" =~ ^[A-Za-z0-9.-]+$ ]] || die "not a DNS name: $name"
    SAN+=("DNS:$name")
done
SAN_LIST=$(IFS=,; echo "${SAN[*]}")
CN=${IPS[0]:-${NAMES[0]}}

run mkdir -p "$DIR/ca" "$DIR/server"
run chmod 700 "$DIR/ca"

if [ -f "$DIR/ca/ca.key" ] && [ -f "$DIR/ca.pem" ]; then
    log "reusing the class CA in $DIR/ca (students' truststores stay valid)"
else
    log "creating the class CA in $DIR/ca"
    run openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$DIR/ca/ca.key" -out "$DIR/ca.pem" -days "$CA_DAYS" \
        -subj "/CN=ClassCord class CA" \
        -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
        -addext "keyUsage=critical,keyCertSign,cRLSign"
    run chmod 600 "$DIR/ca/ca.key"
fi

if [ -f "$DIR/server/server.pem" ] && [ "$RENEW" -eq 0 ]; then
    log "$DIR/server/server.pem exists: keeping it (--renew to make a new one)"
else
    log "server certificate for $SAN_LIST, valid $DAYS days"
    run openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$DIR/server/server.key" -out "$DIR/server/server.csr" -subj "/CN=$CN"
    # The SANs go in through an extension file: the CA signs them, not the request.
    EXT="$DIR/server/server.ext"
    if [ "$DRY_RUN" -eq 0 ]; then
        printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" \
            "extendedKeyUsage=serverAuth" "subjectAltName=$SAN_LIST" > "$EXT"
    else
        echo "+ write $EXT (subjectAltName=$SAN_LIST)"
    fi
    run openssl x509 -req -in "$DIR/server/server.csr" -CA "$DIR/ca.pem" \
        -CAkey "$DIR/ca/ca.key" -CAcreateserial -CAserial "$DIR/ca/ca.srl" \
        -out "$DIR/server/server.pem" -days "$DAYS" -extfile "$EXT"
    run rm -f "$DIR/server/server.csr" "$EXT"
    # The server runs as uid 10001 in the container: the key is readable by it
    # through the bind mount only if the folder's owner lets it (see CONTAINERS.md).
    run chmod 644 "$DIR/server/server.pem"
    run chmod 600 "$DIR/server/server.key"
fi

if [ -n "$OWNER" ]; then
    run chown -R "$OWNER:$OWNER" "$DIR/server"
fi

if command -v keytool >/dev/null; then
    run rm -f "$DIR/truststore.p12"
    run keytool -importcert -noprompt -storetype PKCS12 -keystore "$DIR/truststore.p12" \
        -storepass "$STORE_PASSWORD" -alias classcord-ca -file "$DIR/ca.pem"
else
    log "keytool not found (a JDK has it): no Java truststore made; Java 9+ can also"
    log "load ca.pem with CertificateFactory, see CONTAINERS.md"
fi

if [ "$DRY_RUN" -eq 1 ]; then
    log "dry run: nothing was written"
    exit 0
fi
log "done. Server: $DIR/server/server.pem and server.key; clients: $DIR/ca.pem,"
log "$DIR/truststore.p12 (Java, password \"$STORE_PASSWORD\"). Write this on the board:"
openssl x509 -in "$DIR/server/server.pem" -noout -fingerprint -sha256
openssl x509 -in "$DIR/server/server.pem" -noout -ext subjectAltName | tail -n +2
