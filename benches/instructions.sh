#!/usr/bin/env bash
# Instructions per proxied request, counted by valgrind's callgrind: unlike CPU time, the
# count does not wobble with the neighbours, so two builds compare to a fraction of a percent.
# One route to a local echo pod; each count is (run with 25k requests − run with 5k) / 20k, so
# start-up and shutdown cancel out (connection per request: wrk for 4 s, minus an idle run).
# Each binary is measured twice: on a plain route, and on an annotated one (a regex
# rewrite-target, upstream-vhost, x-forwarded-prefix and a body limit), the same request.
# A binary that does not read the annotations (an old build) gets only the plain row.
#
#   benches/instructions.sh                       # this checkout's release build
#   benches/instructions.sh OLD_BINARY NEW_BINARY # two builds side by side
#   VESTIBULE_BENCH_ROUTES=plain benches/instructions.sh   # only the plain route
#   VESTIBULE_BENCH_ROUTES="rr2 ewma2" benches/instructions.sh   # round robin and ewma, two pods
#   VESTIBULE_BENCH_ROUTES="plain httproute" benches/instructions.sh   # an Ingress and an HTTPRoute
#
# Needs (Debian): valgrind nghttp2-client (h2load) wrk curl.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
cargo build --release --quiet --bin vestibule --example echo
binaries=("$@")
[ ${#binaries[@]} -gt 0 ] || binaries=("$repo/target/release/vestibule")
work="$(mktemp -d /tmp/vestibule-instructions.XXXXXX)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
pod_port=18281 port=18290

backend_yaml() {
  cat <<EOF
---
apiVersion: v1
kind: Service
metadata: {name: up, namespace: b}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: up, namespace: b, labels: {kubernetes.io/service-name: up}}
addressType: IPv4
ports: [{name: http, port: $pod_port}]
endpoints: [{addresses: ["127.0.0.1"]}]
EOF
}
{
  cat <<EOF
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: b, namespace: b}
spec:
  ingressClassName: vestibule
  rules: [{host: bench.local, http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: up, port: {name: http}}}}]}}]
EOF
  backend_yaml
} > "$work/plain.yaml"
{
  cat <<'EOF'
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: b
  namespace: b
  annotations:
    nginx.ingress.kubernetes.io/rewrite-target: /$1
    nginx.ingress.kubernetes.io/upstream-vhost: inner.bench
    nginx.ingress.kubernetes.io/x-forwarded-prefix: /bench
    nginx.ingress.kubernetes.io/proxy-body-size: 8m
spec:
  ingressClassName: vestibule
  rules: [{host: bench.local, http: {paths: [{path: "/(.*)", pathType: ImplementationSpecific, backend: {service: {name: up, port: {name: http}}}}]}}]
EOF
  backend_yaml
} > "$work/annotated.yaml"
# Two pods, for comparing the balancers: round robin and ewma over the same two endpoints.
two_pods_yaml() { # ANNOTATIONS
  cat <<EOF
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: b, namespace: b, annotations: {$1}}
spec:
  ingressClassName: vestibule
  rules: [{host: bench.local, http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: up, port: {name: http}}}}]}}]
---
apiVersion: v1
kind: Service
metadata: {name: up, namespace: b}
spec: {ports: [{name: http, port: 80}]}
EOF
  for p in "$pod_port" "$((pod_port + 1))"; do
    cat <<EOF
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: up-$p, namespace: b, labels: {kubernetes.io/service-name: up}}
addressType: IPv4
ports: [{name: http, port: $p}]
endpoints: [{addresses: ["127.0.0.1"]}]
EOF
  done
}
# The same route as an HTTPRoute through a Gateway (a ranked host group).
{
  cat <<EOF
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: vestibule}
spec: {controllerName: vestibule.dev/ingress-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: g, namespace: b}
spec:
  gatewayClassName: vestibule
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: b, namespace: b}
spec:
  parentRefs: [{name: g}]
  hostnames: [bench.local]
  rules: [{backendRefs: [{name: up, port: 80}]}]
EOF
  backend_yaml
} > "$work/httproute.yaml"
two_pods_yaml "" > "$work/rr2.yaml"
two_pods_yaml "nginx.ingress.kubernetes.io/load-balance: ewma" > "$work/ewma2.yaml"
target/release/examples/echo "127.0.0.1:$pod_port" up 2>/dev/null &
target/release/examples/echo "127.0.0.1:$((pod_port + 1))" up 2>/dev/null &

# Runs BINARY under callgrind while LOAD (a command) runs against it; prints "Ir requests".
counted() {
  local binary=$1 load=$2 out="$work/cg.$RANDOM"
  valgrind --tool=callgrind --callgrind-out-file="$out" "$binary" --manifests "$work/$routes.yaml" \
    --http-addr "127.0.0.1:$port" --https-addr 127.0.0.1:0 --admin-addr 127.0.0.1:0 \
    --access-log=false --log-level warn --worker-threads 1 2>/dev/null &
  local pid=$!
  for _ in $(seq 1 300); do
    curl -sf -o /dev/null -H 'Host: bench.local' "http://127.0.0.1:$port/" && break
    sleep 0.2
  done
  local requests
  requests=$(eval "$load")
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
  echo "$(awk '/^summary:/ {print $2}' "$out") $requests"
}

h2load_n() { # PROTOCOL-FLAGS N
  echo "h2load $1 -n $2 -c 4 --connect-to=127.0.0.1:$port http://bench.local:$port/ | awk '/^requests:/ {print \$8}'"
}

printf '%-60s %-10s %14s %14s %14s\n' binary route h1-keepalive h2c h1-close
for binary in "${binaries[@]}"; do
for routes in ${VESTIBULE_BENCH_ROUTES:-plain annotated}; do
  # An old build warns of nothing and reads no annotation: its annotated row would lie.
  if [ "$routes" != plain ] && ! "$binary" validate "$work/$routes.yaml" 2>&1 | grep -q '0 errors'; then
    continue
  fi
  # Nor does it serve HTTPRoutes.
  if [ "$routes" = httproute ] && ! "$binary" --help | grep -q gateway-http-port; then
    continue
  fi
  row=()
  for flags in --h1 "-m 10"; do
    read -r small _ < <(counted "$binary" "$(h2load_n "$flags" 5000)")
    read -r large _ < <(counted "$binary" "$(h2load_n "$flags" 25000)")
    row+=($(( (large - small) / 20000 )))
  done
  read -r idle _ < <(counted "$binary" "echo 0")
  read -r busy requests < <(counted "$binary" \
    "wrk -t1 -c4 -d4s -H 'Host: bench.local' -H 'Connection: close' http://127.0.0.1:$port/ | awk '/requests in/ {print \$1}'")
  row+=($(( (busy - idle) / requests )))
  printf '%-60s %-10s %14s %14s %14s\n' "$binary" "$routes" "${row[@]}"
done
done
echo "(instructions per request; h1-close includes the connection)"
