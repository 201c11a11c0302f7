#!/usr/bin/env bash
# Ablation on the study's protocol (held-out seeds 5-9, 1M steps): PDQN with the dynamics model trained on the
# whole real batch each update instead of half (more accurate, slower; see experiments/model-accuracy).
# Reproduce from the repository root: bash experiments/study-1m/ablation.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=experiments/study-1m/runs
GAMES=${GAMES:-"breakout space_invaders"}
for game in $GAMES; do
  dir="$OUT/$game-pdqn-model-full"
  if [ -f "$dir/summary.json" ]; then echo "skip $dir (done)"; continue; fi
  rm -rf "$dir"
  python -m pdqn.experiments.minatar --env "$game" --run-dir "$dir" --total-timesteps 1003520 --num-seeds 5 \
    --seed 5 --eval-envs 128 --alg pdqn --dyna.model-fraction 1.0 --dyna.model-minibatches 8 \
    --track.experiment pdqn-model-full 2>&1 | tail -n 1
done
