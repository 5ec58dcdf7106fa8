#!/usr/bin/env bash
# Peak resident memory of a release build while 100 MiB are streamed up and 100 MiB down
# through it (issue target: under 50 MiB). Uses the quickstart manifests and echo backend.
#
#   benches/stream_rss.sh
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
cargo build --release --quiet --bin vestibule --example echo
target/release/examples/echo 127.0.0.1:9001 blue 2>/dev/null &
echo_pid=$!
target/release/vestibule --manifests examples/quickstart --http-addr 127.0.0.1:18571 \
  --https-addr 127.0.0.1:0 --admin-addr 127.0.0.1:0 --log-level warn --access-log=false &
pid=$!
trap 'kill $pid $echo_pid 2>/dev/null' EXIT
sleep 1
hwm() { awk '/VmHWM/ {print $2}' "/proc/$pid/status"; }
echo "idle:          $(hwm) KiB"
head -c 104857600 /dev/zero |
  curl -sS -H 'Host: blue.example' -H 'Expect:' --data-binary @- http://127.0.0.1:18571/upload >/dev/null
echo "after upload:  $(hwm) KiB"
curl -sS -H 'Host: blue.example' "http://127.0.0.1:18571/download?bytes=104857600" | wc -c >/dev/null
echo "after download: $(hwm) KiB (peak resident memory)"
