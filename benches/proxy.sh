#!/usr/bin/env bash
# Measures Vestibule's data path next to nginx and HAProxy with the shared harness
# (../shared/bench/run.sh; its README has the contract and how to read the numbers).
# Vestibule runs in file mode with the anchors' table: 20 hosts x 5 routes
# (/api/v1/, /api/, /static/, Exact /healthz, /), bench.local / -> 127.0.0.1:18080.
#
#   benches/proxy.sh                                  # default scenarios, one round
#   benches/proxy.sh --rounds 4 --scenarios h1-keepalive,h2c --targets nginx,vestibule
#   VESTIBULE_BENCH_ACCESS_LOG=true benches/proxy.sh   # the default configuration, access log on
#   VESTIBULE_BENCH_ANNOTATED=true benches/proxy.sh    # bench.local / is an annotated route:
#       a regex rewrite-target, upstream-vhost, x-forwarded-prefix and a body limit
#
# The anchors run without access logs, so by default Vestibule does too: same work for all.
#
# Needs (Debian): nginx haproxy wrk nghttp2-client curl openssl python3.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
harness="${VESTIBULE_BENCH_HARNESS:-$repo/../shared/bench/run.sh}"
[ -x "$harness" ] || { echo "benchmark harness not found at $harness (set VESTIBULE_BENCH_HARNESS)" >&2; exit 2; }

cargo build --release --quiet --manifest-path "$repo/Cargo.toml" --bin vestibule
manifests="$(mktemp -d /tmp/vestibule-bench.XXXXXX)"
trap 'rm -rf "$manifests"' EXIT

# The harness's certificate (it makes the same one when missing), served from a Secret.
tls=/tmp/bench-tls
if [[ ! -s $tls/cert.pem || ! -s $tls/key.pem || ! -s $tls/bench.pem ]]; then
  mkdir -p "$tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$tls/key.pem" -out "$tls/cert.pem" -days 3650 -subj /CN=bench.local \
    -addext "subjectAltName=DNS:bench.local,DNS:*.example.com,IP:127.0.0.1" >/dev/null 2>&1
  cat "$tls/cert.pem" "$tls/key.pem" > "$tls/bench.pem"
fi

python3 - "$manifests/bench.yaml" "$tls" "${VESTIBULE_BENCH_ANNOTATED:-false}" <<'PY'
import sys
annotated = sys.argv[3] == "true"
hosts = [f"app{i:02d}.example.com" for i in range(1, 20)]
if not annotated:
    hosts.insert(9, "bench.local")
routes = [("Prefix", "/api/v1/"), ("Prefix", "/api/"), ("Prefix", "/static/"), ("Exact", "/healthz"), ("Prefix", "/")]
docs = ["""apiVersion: v1
kind: Service
metadata: {name: upstream, namespace: bench}
spec: {ports: [{name: http, port: 80}]}
""", """apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: upstream, namespace: bench, labels: {kubernetes.io/service-name: upstream}}
addressType: IPv4
ports: [{name: http, port: 18080}]
endpoints: [{addresses: ["127.0.0.1"]}]
"""]
rules = []
for h in hosts:
    paths = "".join(f"""          - path: {p}
            pathType: {t}
            backend: {{service: {{name: upstream, port: {{name: http}}}}}}
""" for t, p in routes)
    rules.append(f"""    - host: {h}
      http:
        paths:
{paths}""")
ind = lambda path: "".join("    " + l + "\n" for l in open(path).read().strip().splitlines())
docs.append(f"""apiVersion: v1
kind: Secret
metadata: {{name: bench-tls, namespace: bench}}
type: kubernetes.io/tls
stringData:
  tls.crt: |
{ind(sys.argv[2] + "/cert.pem")}  tls.key: |
{ind(sys.argv[2] + "/key.pem")}""")
# The plain-HTTP scenarios must not be redirected to https.
docs.append("""apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: bench
  namespace: bench
  annotations: {vestibule.dev/ssl-redirect: "false"}
spec:
  ingressClassName: vestibule
  tls:
    - hosts: [bench.local, "*.example.com"]
      secretName: bench-tls
  rules:
""" + "".join(rules))
if annotated:
    # The same request, on a route that pays for a regex rewrite and three more filters.
    docs.append("""apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: bench-annotated
  namespace: bench
  annotations:
    vestibule.dev/ssl-redirect: "false"
    nginx.ingress.kubernetes.io/rewrite-target: /$1
    nginx.ingress.kubernetes.io/upstream-vhost: bench.local
    nginx.ingress.kubernetes.io/x-forwarded-prefix: /bench
    nginx.ingress.kubernetes.io/proxy-body-size: 8m
spec:
  ingressClassName: vestibule
  rules:
    - host: bench.local
      http:
        paths:
          - path: /(.*)
            pathType: ImplementationSpecific
            backend: {service: {name: upstream, port: {name: http}}}
""")
open(sys.argv[1], "w").write("---\n".join(docs))
PY

"$repo/target/release/vestibule" validate "$manifests" >&2
exec "$harness" \
  --proxy-cmd "$repo/target/release/vestibule --manifests $manifests --http-addr 127.0.0.1:18090 --https-addr 127.0.0.1:18490 --admin-addr 127.0.0.1:18099 --log-level warn --access-log ${VESTIBULE_BENCH_ACCESS_LOG:-false}" \
  --proxy-port 18090 --proxy-tls-port 18490 --proxy-name vestibule "$@"
