#!/usr/bin/env bash
# Ablation on the study's protocol (held-out seeds 5-9, 1M steps): PDQN with the dynamics model trained on
# half of each real batch (the default until the study showed the whole batch helps; see experiments/model-accuracy).
# Reproduce from the repository root: bash experiments/study-1m/ablation.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=experiments/study-1m/runs
GAMES=${GAMES:-"breakout space_invaders"}
for game in $GAMES; do
  dir="$OUT/$game-pdqn-half"
  if [ -f "$dir/summary.json" ]; then echo "skip $dir (done)"; continue; fi
  rm -rf "$dir"
  python -m pdqn.experiments.minatar --env "$game" --run-dir "$dir" --total-timesteps 1003520 --num-seeds 5 \
    --seed 5 --eval-envs 128 --alg pdqn --dyna.model-fraction 0.5 --dyna.model-minibatches 4 \
    --track.experiment pdqn-half 2>&1 | tail -n 1
done
