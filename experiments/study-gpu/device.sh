#!/usr/bin/env bash
# Run on the device machine through the device tool, with `.whl` (from wheels.sh) carried, and the slice to train in
# GAMES and ONLY, for example (timeout_s of the call: BUDGET_S plus a minute):
#   BUDGET_S=480 GAMES=breakout ONLY="pqn pdqn" bash experiments/study-gpu/device.sh
# Unpacks the carried packages beside the image's JAX (its python3 is itself a venv: a symlink named `python` to it
# loses the venv's packages, so `python` is a small wrapper script), trains the slice with run.sh under a hard
# deadline, and packs each finished run's small files (config.json, summary.json, metrics.parquet, policy.json) into
# $OUT/runs.tar.gz; unpack that here in the repository root and commit it.
# Learned on the first lease (2026-12-04): a plain `timeout` only sends SIGTERM, on which a run stops cleanly at its next
# chunk boundary and saves a checkpoint, which can outlast the call; with the output piped through `tee`, the whole
# call then hit the tool's limit and nothing came back. Here every step has a hard kill (-k), logs go to files under
# $OUT, and the archive is written after each finished run, so what finished comes back whatever happens later.
set -uo pipefail
cd "$(dirname "$0")/../.."
deadline=$(( $(date +%s) + ${BUDGET_S:-480} ))
python3 -c "import tarfile; tarfile.open('.whl/site.tar.xz').extractall('/tmp/pdqn-site')" || exit 1
mkdir -p /tmp/pdqn-bin && printf '#!/bin/sh\nexec python3 "$@"\n' > /tmp/pdqn-bin/python && chmod +x /tmp/pdqn-bin/python
export PATH=/tmp/pdqn-bin:$PATH PYTHONPATH=$PWD:/tmp/pdqn-site PYTHONUNBUFFERED=1
pack() {
  find experiments/study-gpu/runs -name summary.json -printf '%h\n' 2>/dev/null | while read -r run; do
    for f in config.json summary.json metrics.parquet policy.json; do if [ -f "$run/$f" ]; then echo "$run/$f"; fi; done
  done | tar czf "$OUT/runs.tar.gz.tmp" -T - && mv "$OUT/runs.tar.gz.tmp" "$OUT/runs.tar.gz"
}
status=0
for game in ${GAMES:-asterix breakout freeway space_invaders seaquest}; do
  left=$(( deadline - $(date +%s) ))
  if [ "$left" -lt 60 ]; then echo "deadline: $game not started"; status=124; break; fi
  GAMES=$game timeout -k 15 "$left" bash experiments/study-gpu/run.sh >> "$OUT/study.log" 2>&1 || status=$?
  pack
done
tail -n 20 "$OUT/study.log"
exit $status
