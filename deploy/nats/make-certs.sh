#!/bin/sh
# Makes the certificates of deploy/nats/tenants.conf with openssl:
#
#   deploy/nats/make-certs.sh DIR [NAME...]
#
# into DIR (created; files readable by their owner only):
#   ca.pem, ca-key.pem          the certificate authority (keep ca-key.pem offline)
#   server.pem, server-key.pem  the nats-server's certificate, for localhost,
#                               127.0.0.1, ::1 and every NAME (a DNS name or
#                               an IP address the clients dial)
#   <user>.pem, <user>-key.pem  one client certificate per NATS user
#
# The users are those of accounts.conf; CLIENTS="user ..." names others.
# The server reads the paths from NATS_SERVER_TLS_CERT, NATS_SERVER_TLS_KEY
# and NATS_SERVER_TLS_CA; a client (jetbox, the nats CLI) from NATS_CA,
# NATS_CERT and NATS_KEY. Certificates are valid for DAYS days (825).
set -eu

if [ $# -lt 1 ]; then
	echo "usage: $0 DIR [NAME...]" >&2
	exit 2
fi
dir=$1
shift
clients=${CLIENTS:-"jetbox-worker tenant-sandbox-tenant tenant-acme.eu"}
days=${DAYS:-825}

umask 077
mkdir -p "$dir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# key FILE: a new P-256 private key.
key() {
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"
}

# sign NAME EXTENSIONS: a certificate for NAME's key, signed by the CA.
sign() {
	printf '%s\n' "$2" >"$work/ext"
	openssl req -new -key "$dir/$1-key.pem" -subj "/CN=$1" -out "$work/csr"
	openssl x509 -req -in "$work/csr" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" \
		-set_serial "0x$(openssl rand -hex 16)" -days "$days" -extfile "$work/ext" -out "$dir/$1.pem" \
		2>"$work/log" || { cat "$work/log" >&2; exit 1; }
}

if [ -e "$dir/ca.pem" ]; then
	echo "$dir/ca.pem exists: using that CA" >&2
else
	key "$dir/ca-key.pem"
	openssl req -x509 -new -key "$dir/ca-key.pem" -subj "/CN=jetbox NATS CA" -days "$days" \
		-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
		-out "$dir/ca.pem"
fi

san="DNS:localhost,IP:127.0.0.1,IP:::1"
for name in "$@"; do
	if printf '%s' "$name" | grep -Eq '^[0-9]+(\.[0-9]+){3}$|:'; then
		san="$san,IP:$name"
	else
		san="$san,DNS:$name"
	fi
done

key "$dir/server-key.pem"
sign server "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=$san"

for client in $clients; do
	key "$dir/$client-key.pem"
	sign "$client" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
done

chmod 644 "$dir"/*.pem
chmod 600 "$dir"/*-key.pem
echo "made in $dir: ca.pem, server.pem (for $san), and client certificates for: $clients" >&2
