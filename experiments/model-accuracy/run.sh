#!/usr/bin/env bash
# Dynamics-model accuracy by architecture, with planning switched off (the delay outlasts training), so every
# variant sees the same PQN data stream: Breakout, 300k env steps (73 updates), seed 0.
# Reproduce from the repository root:  bash experiments/model-accuracy/run.sh && python experiments/model-accuracy/summarise.py
# Flags here are pdqn's up to commit b6951e8 (the flat --dyna.* planning options): run this at that commit
# (git checkout b6951e8); docs/pdqn.md ("Flags of earlier versions") gives today's spelling of each.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=experiments/model-accuracy/runs
source experiments/train_point.sh
point() {  # point NAME ARGS...
  local name=$1; shift
  train_point "$OUT/$name" --alg pdqn "${FIRST_PDQN[@]}" --env breakout --total-timesteps 299008 --seed 0 --track.off \
    --eval-every None --dyna.planning-delay 100000 "$@"
}
point mlp128-half --dyna.model-hidden 128 --dyna.model-fraction 0.5
point mlp256-half --dyna.model-hidden 256 --dyna.model-fraction 0.5
point mlp128-full --dyna.model-hidden 128 --dyna.model-fraction 1.0 --dyna.model-minibatches 8
point mlp64-half --dyna.model-hidden 64 --dyna.model-fraction 0.5
