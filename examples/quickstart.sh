#!/usr/bin/env bash
# Runs Vestibule on examples/quickstart/ with two echo backends, no cluster needed.
# Then, from another terminal:
#   curl -H 'Host: blue.example' localhost:8080/
#   curl -H 'Host: shop.example' localhost:8080/api/cart     # → green
#   curl -H 'Host: shop.example' localhost:8080/apiary       # → blue (Prefix matches whole path elements)
#   curl -H 'Host: a.green.example' localhost:8080/          # → green (wildcard)
#   curl -H 'Host: nowhere.example' localhost:8080/          # → 404
#   curl --resolve secure.example:8443:127.0.0.1 --cacert examples/tls/ca.pem https://secure.example:8443/
#   curl -i -H 'Host: secure.example' localhost:8080/         # → 308 to https
#   curl -H 'Host: rewrite.example' localhost:8080/api/cart  # → green sees /cart (rewrite-target)
#   curl -i -H 'Host: old.example' localhost:8080/           # → 301 (permanent-redirect)
#   curl localhost:9090/debug/routes                         # the live table
# Edit examples/quickstart/*.yaml while it runs: changes apply within a second.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "building Vestibule and the echo backend (the first build takes a few minutes)..." >&2
cargo build --bin vestibule --example echo
trap 'kill $(jobs -p) 2>/dev/null' EXIT
# One backend at a time, each up before the next starts, so their start lines do not mix.
start_backend() {
  target/debug/examples/echo "127.0.0.1:$1" "$2" &
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return
    sleep 0.05
  done
  echo "the $2 backend did not start on port $1" >&2
  exit 1
}
start_backend 9001 blue
start_backend 9002 green
target/debug/vestibule --manifests examples/quickstart \
  --http-addr "${HTTP_ADDR:-127.0.0.1:8080}" --https-addr "${HTTPS_ADDR:-127.0.0.1:8443}" \
  --https-redirect-port "${HTTPS_REDIRECT_PORT:-8443}" --admin-addr "${ADMIN_ADDR:-127.0.0.1:9090}" "$@"
