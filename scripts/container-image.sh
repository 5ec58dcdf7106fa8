#!/usr/bin/env bash
# Builds the container image from the repository's Dockerfile without pulling anything: a
# static binary built on this machine takes the place of the Dockerfile's compiling stage
# (podman, runc). Then runs it on the quickstart manifests and checks that a request is routed. Installs podman and runc
# (Debian packages) when missing.
#
#   scripts/container-image.sh            # build vestibule:local and check it
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
image=vestibule:local
port=18581

if ! command -v podman >/dev/null || ! command -v runc >/dev/null; then
  apt-get update -qq && apt-get install -y -qq podman runc >/dev/null
fi
podman() { command podman --runtime runc --cgroup-manager cgroupfs --events-backend file "$@"; }

# A static binary (glibc, crt-static): the image holds nothing else.
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --quiet --bin vestibule \
  --target x86_64-unknown-linux-gnu
cargo build --release --quiet --example echo
context="$(mktemp -d)"
trap 'rm -rf "$context"; kill $(jobs -p) 2>/dev/null || true; podman rm -f vestibule-check >/dev/null 2>&1 || true' EXIT
# The repository's own Dockerfile, with the binary built above in place of its compiling
# stage (which would pull a Rust image from a registry).
cp target/x86_64-unknown-linux-gnu/release/vestibule "$context/vestibule-static"
podman build --quiet --build-arg BINARY=prebuilt -f "$repo/Dockerfile" -t "$image" "$context" >/dev/null
echo "built $image ($(podman image inspect "$image" --format '{{.Size}}') bytes)"

# Run it on the quickstart manifests, with the echo backends on this machine.
target/release/examples/echo 127.0.0.1:9001 blue 2>/dev/null &
target/release/examples/echo 127.0.0.1:9002 green 2>/dev/null &
podman run -d --name vestibule-check --network host \
  --ulimit nofile=20000:20000 --ulimit nproc=32768:32768 \
  -v "$repo/examples/quickstart:/manifests:ro" "$image" \
  --manifests /manifests --http-addr 127.0.0.1:$port --https-addr 127.0.0.1:0 --admin-addr 127.0.0.1:0 >/dev/null
for _ in $(seq 1 50); do
  if answer=$(curl -sf -H 'Host: blue.example' "http://127.0.0.1:$port/"); then
    break
  fi
  sleep 0.2
done
if ! grep -q '"backend": "blue"' <<<"${answer:-}"; then
  echo "the container did not route the request; its log:" >&2
  podman logs vestibule-check >&2 || true
  exit 1
fi
user=$(podman inspect vestibule-check --format '{{.Config.User}}')
echo "container (user $user) routed Host: blue.example to the blue backend: image ok"
