#!/usr/bin/env bash
# The gRPC path (backend-protocol: GRPC) next to nginx's grpc_pass, in one run: h2load sends
# unary gRPC-style calls (HTTP/2 POST, content-type application/grpc) over h2c to each proxy,
# which forwards them to the same h2c upstream (an nginx answering 200 with grpc-status 0).
# The shared harness has no gRPC scenario, so this prints its own table: requests/s and the
# proxy's CPU-seconds per 100k requests, each with its ratio to nginx.
#
#   benches/grpc.sh                    # 3 rounds of 20,000 calls, 10 connections x 10 streams
#   ROUNDS=5 CALLS=50000 benches/grpc.sh
#
# Needs (Debian): nginx nghttp2-client (h2load).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
rounds="${ROUNDS:-3}" calls="${CALLS:-20000}"
up_port=18281 nginx_port=18292 vestibule_port=18293 admin_port=18299
cargo build --release --quiet --manifest-path "$repo/Cargo.toml" --bin vestibule
work="$(mktemp -d /tmp/vestibule-grpc.XXXXXX)"
chmod 755 "$work" # nginx's workers run as nobody
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

nginx_conf() { # name listen-port location-body [http-block extra]
  cat > "$work/$1.conf" <<EOF
worker_processes 2; # as many as Vestibule has worker threads here
daemon off;
pid $work/$1.pid;
error_log $work/$1.err warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $work/$1-body;
  proxy_temp_path $work/$1-proxy;
  fastcgi_temp_path $work/$1-fcgi;
  uwsgi_temp_path $work/$1-uwsgi;
  scgi_temp_path $work/$1-scgi;
  ${4:-}
  server {
    listen 127.0.0.1:$2 http2;
    location / { $3 }
  }
}
EOF
}
nginx_conf upstream "$up_port" 'default_type application/grpc; add_header grpc-status 0; return 200 "";'
# Keep-alive to the upstream, as Vestibule keeps its HTTP/2 connection.
nginx_conf front "$nginx_port" "grpc_pass grpc://greeter;" \
  "upstream greeter { server 127.0.0.1:$up_port; keepalive 32; }"
mkdir -p "$work/manifests"
cat > "$work/manifests/grpc.yaml" <<EOF
apiVersion: v1
kind: Service
metadata: {name: greeter, namespace: bench}
spec: {ports: [{name: grpc, port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: greeter, namespace: bench, labels: {kubernetes.io/service-name: greeter}}
addressType: IPv4
ports: [{name: grpc, port: $up_port}]
endpoints: [{addresses: ["127.0.0.1"]}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: greeter
  namespace: bench
  annotations: {nginx.ingress.kubernetes.io/backend-protocol: GRPC}
spec:
  ingressClassName: vestibule
  rules:
    - host: grpc.local
      http:
        paths:
          - {path: /, pathType: Prefix, backend: {service: {name: greeter, port: {name: grpc}}}}
EOF
nginx -e "$work/upstream.err" -c "$work/upstream.conf" &
printf '\0\0\0\0\x07\n\x05world' > "$work/message"

cpu_seconds() { # pid → user+system CPU seconds of the process and its children (nginx's worker)
  local total=0 p
  for p in "$1" $(pgrep -P "$1"); do
    total="$(awk -v t="$total" -v hz="$(getconf CLK_TCK)" '{ print t + ($14 + $15) / hz }' "/proc/$p/stat")"
  done
  echo "$total"
}
wait_port() {
  for _ in $(seq 100); do (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.05; done
  echo "nothing listens on $1" >&2; exit 1
}
measure() { # name port pid → "rps cpu_per_100k"
  local out before after rps
  h2load -n 2000 -c 10 -m 10 -H 'content-type: application/grpc' -H 'te: trailers' \
    -H ':authority: grpc.local' -d "$work/message" "http://127.0.0.1:$2/demo.Greeter/SayHello" >/dev/null
  before="$(cpu_seconds "$3")"
  out="$(h2load -n "$calls" -c 10 -m 10 -H 'content-type: application/grpc' -H 'te: trailers' \
    -H ':authority: grpc.local' -d "$work/message" "http://127.0.0.1:$2/demo.Greeter/SayHello")"
  after="$(cpu_seconds "$3")"
  grep -q " 0 failed, 0 errored" <<<"$out" || { echo "$1: failed calls:" >&2; grep "^requests:\|^status codes:" <<<"$out" >&2; }
  rps="$(awk '/^finished in/ { print $4 }' <<<"$out")"
  awk -v r="$rps" -v b="$before" -v a="$after" -v n="$calls" 'BEGIN { printf "%.0f %.3f\n", r, (a - b) * 100000 / n }'
}
wait_port "$up_port"
printf '%-6s %-10s %12s %12s %18s %12s\n' round proxy "calls/s" "vs nginx" "cpu-s/100k calls" "vs nginx"
for round in $(seq "$rounds"); do
  nginx -e "$work/front.err" -c "$work/front.conf" & wait_port "$nginx_port"
  read -r n_rps n_cpu < <(measure nginx "$nginx_port" "$(cat "$work/front.pid")")
  kill "$(cat "$work/front.pid")"; wait "$!" 2>/dev/null || true
  "$repo/target/release/vestibule" --manifests "$work/manifests" --http-addr "127.0.0.1:$vestibule_port" \
    --https-addr 127.0.0.1:0 --admin-addr "127.0.0.1:$admin_port" --access-log=false --log-level warn &
  vpid=$!
  wait_port "$vestibule_port"
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$admin_port/readyz" >/dev/null && break; sleep 0.05; done
  read -r v_rps v_cpu < <(measure vestibule "$vestibule_port" "$vpid")
  kill "$vpid"; wait "$vpid" 2>/dev/null || true
  printf '%-6s %-10s %12s %12s %18s %12s\n' "$round" nginx "$n_rps" 1.00 "$n_cpu" 1.00
  awk -v r="$round" -v vr="$v_rps" -v nr="$n_rps" -v vc="$v_cpu" -v nc="$n_cpu" \
    'BEGIN { printf "%-6s %-10s %12s %12.2f %18s %12.2f\n", r, "vestibule", vr, vr / nr, vc, vc / nc }'
done
