#!/usr/bin/env bash
# Install the engine alone (no voice plugin, no torch) and the example echo plugin into a fresh
# virtual environment WITHOUT the system's site packages, then run a graph with the echo plugin.
# Prints what got installed and the run's report. Usage: scripts/check_engine_alone.sh [VENV_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-$(mktemp -d)/venv}
work=$(mktemp -d)
cp -r . "$work/src"          # build from a copy: no build/ or *.egg-info in the repository
rm -rf "$work/src/.git"
python -m venv "$venv"
"$venv/bin/pip" install --quiet "$work/src" "$work/src/examples/vcgraph-echo"
echo "--- installed:"
"$venv/bin/pip" list --format=freeze | grep -v '^pip=' | sort
echo "--- vcgraph requires: $("$venv/bin/pip" show vcgraph | sed -n 's/^Requires: //p')"
if "$venv/bin/python" -c 'import torch' 2>/dev/null; then echo "torch is installed: not an engine-only install"; exit 1; fi
echo "--- vcgraph plugins:"
"$venv/bin/vcgraph" plugins
echo "--- vcgraph run:"
"$venv/bin/vcgraph" run examples/vcgraph-echo/echo.yaml --input audio=examples/audio/source.wav \
    -o "$work/echo.wav" --report --no-progress
"$venv/bin/python" -c "import soundfile as sf, sys; x, sr = sf.read(sys.argv[1]); print(f'wrote {len(x)} samples at {sr} Hz')" "$work/echo.wav"
rm -rf "$work"
