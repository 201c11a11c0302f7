#!/usr/bin/env bash
# Run on the device machine through the device tool, with `.whl` (from wheels.sh) carried, and the slice to train in
# GAMES and ONLY (one lease holds about one 10-minute command), for example:
#   GAMES=breakout ONLY=pqn bash experiments/study-gpu/device.sh
# Installs the carried wheels beside the image's JAX (its python3 is itself a venv, so a --system-site-packages venv
# would not see JAX: the wheels go to a folder on PYTHONPATH instead), trains the slice with run.sh, and packs each finished
# run's small files (config.json, summary.json, metrics.parquet, policy.json) into $OUT/runs.tar.gz; unpack that here
# in the repository root and commit it.
set -euo pipefail
cd "$(dirname "$0")/../.."
python3 -m pip install -q --no-index --no-deps --target /tmp/pdqn-site .whl/*.whl
mkdir -p /tmp/pdqn-bin && ln -sf "$(command -v python3)" /tmp/pdqn-bin/python   # run.sh calls `python`
export PATH=/tmp/pdqn-bin:$PATH PYTHONPATH=$PWD:/tmp/pdqn-site PYTHONUNBUFFERED=1
# SIGTERM before the device tool's 10-minute limit: the run in progress stops cleanly, and the finished ones still
# come back (a stopped run is lost with the machine: its checkpoints are too large to bring back; pick slices that fit)
status=0
timeout "${BUDGET_S:-540}" bash experiments/study-gpu/run.sh || status=$?
mkdir -p experiments/study-gpu/runs
find experiments/study-gpu/runs -name summary.json -printf '%h\n' | while read -r run; do
  for f in config.json summary.json metrics.parquet policy.json; do if [ -f "$run/$f" ]; then echo "$run/$f"; fi; done
done | tar czf "$OUT/runs.tar.gz" -T -
exit $status
