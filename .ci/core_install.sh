#!/usr/bin/env bash
# The core install as another JAX project meets it: build the wheel, install it WITHOUT extras
# into a new venv, then import dcgenv and step every registered environment from a directory
# outside the checkout (.ci/smoke_core.py). Also checks the wheel holds only the library.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --upgrade pip
"$work/venv/bin/python" -m pip wheel -q --no-deps -w "$work/dist" "$repo"
"$work/venv/bin/python" -m pip install -q "$work"/dist/dcgenv-*.whl
cd "$work"
"$work/venv/bin/python" "$repo/.ci/smoke_core.py" "$repo" "$work"/dist/dcgenv-*.whl
