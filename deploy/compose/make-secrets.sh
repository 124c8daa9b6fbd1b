#!/usr/bin/env bash
# Makes the secrets compose reads (deploy/compose/secrets/, never committed): Grafana's
# admin password, a private CA, the coordinator's server certificate, a worker client
# certificate (OU=spriteforge-worker), and a token table with one worker and one admin
# token. Files that exist are kept, so a second run only adds what is missing; copy ca.crt,
# worker.crt, worker.key and worker-token to each Spark that runs deploy/compose/worker.yaml.
# Usage: deploy/compose/make-secrets.sh [NAME...]   names (or IP addresses) other machines
#   reach the coordinator by, e.g. spark-1.local 192.168.1.10; the certificate always holds
#   coordinator, localhost and 127.0.0.1 as well.   SECRETS_DIR: where (default ./secrets here)
set -euo pipefail
DIR="${SECRETS_DIR:-$(cd "$(dirname "$0")" && pwd)/secrets}"
mkdir -p "$DIR" && chmod 700 "$DIR" && cd "$DIR"
random() { openssl rand -hex "$1"; }
sans="DNS:coordinator,DNS:localhost,IP:127.0.0.1"
for name in "$@"; do
  if [[ "$name" =~ ^[0-9.]+$|:.*: ]]; then sans+=",IP:$name"; else sans+=",DNS:$name"; fi
done

[ -s grafana-admin-password ] || random 16 >grafana-admin-password
if [ ! -s ca.crt ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 \
    -subj /CN=spriteforge-ca -keyout ca.key -out ca.crt 2>/dev/null
fi
if [ ! -s coordinator.crt ]; then
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=coordinator \
    -keyout coordinator.key -out coordinator.csr 2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$sans" >server.ext
  openssl x509 -req -in coordinator.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 825 \
    -extfile server.ext -out coordinator.crt 2>/dev/null
fi
if [ ! -s worker.crt ]; then
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=spriteforge-worker/OU=spriteforge-worker \
    -keyout worker.key -out worker.csr 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\n' >client.ext
  openssl x509 -req -in worker.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 825 \
    -extfile client.ext -out worker.crt 2>/dev/null
fi
if [ ! -s auth.yaml ]; then
  random 24 >worker-token
  random 24 >admin-token
  printf 'tokens:\n  - {name: workers, token: %s, role: worker}\n  - {name: admin, token: %s, role: admin}\n' \
    "$(cat worker-token)" "$(cat admin-token)" >auth.yaml
fi
rm -f ./*.csr ./*.ext ./*.srl
# Compose mounts secrets as they are on the host, and the containers run as uid 10001: the
# files are readable, the folder (0700) keeps other users of this machine out.
chmod 644 ./*
chmod 600 ca.key
echo "make-secrets: $DIR: CA, coordinator certificate ($sans), worker certificate, tokens, Grafana password"
