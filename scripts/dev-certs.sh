#!/bin/sh
# scripts/dev-certs.sh: a throwaway certificate authority and node
# certificates for tests and `KV_TLS=1 make run` (docs/security.md). Not
# for production: the CA key sits unencrypted next to the certificates.
#
#   scripts/dev-certs.sh DIR [NODE_ID...]      (default node ids: n1 n2 n3)
#
# Writes into DIR (created if missing; existing files are kept, so a
# second run adds the nodes that are missing):
#   ca.pem, ca.key              the cluster CA (ECDSA P-256, 10 years)
#   ID.pem, ID.key              each node: CN=ID and subjectAltName DNS:ID,
#                               DNS:localhost, IP:127.0.0.1 (the node id is
#                               what peers check; the rest lets clients
#                               verify a host name if they want to)
#   client.pem, client.key      a client certificate (CN=client; extended
#                               key usage clientAuth only, so no node can
#                               use it), for libkvorum's and the CLI's
#                               --tls-cert
set -eu
DIR=${1:?usage: scripts/dev-certs.sh DIR [NODE_ID...]}
shift
[ $# -gt 0 ] || set -- n1 n2 n3
mkdir -p "$DIR"
umask 077
if [ ! -f "$DIR/ca.pem" ]; then
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
    -nodes -keyout "$DIR/ca.key" -out "$DIR/ca.pem" -days 3650 \
    -subj "/CN=kvorum dev CA" 2>/dev/null
fi
# issue NAME SAN: a key and a certificate signed by the CA.
issue() { # NAME SAN USAGE
  [ -f "$DIR/$1.pem" ] && return 0
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$DIR/$1.key" -out "$DIR/$1.csr" -subj "/CN=$1" 2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=%s\n' "$2" "$3" >"$DIR/$1.ext"
  openssl x509 -req -in "$DIR/$1.csr" -CA "$DIR/ca.pem" -CAkey "$DIR/ca.key" \
    -CAcreateserial -out "$DIR/$1.pem" -days 825 -extfile "$DIR/$1.ext" \
    2>/dev/null
  rm -f "$DIR/$1.csr" "$DIR/$1.ext"
}
for id in "$@"; do
  issue "$id" "DNS:$id,DNS:localhost,IP:127.0.0.1" serverAuth,clientAuth
done
issue client "DNS:client" clientAuth
chmod 644 "$DIR"/*.pem
echo "certificates for $* in $DIR (CA: $DIR/ca.pem)"
