#!/usr/bin/env bash
# Ablation on the study's protocol (held-out seeds 5-9, 1M steps): PDQN with the dynamics model trained on
# half of each real batch (the default until the study showed the whole batch helps; see experiments/model-accuracy).
# Reproduce from the repository root: bash experiments/study-1m/ablation.sh
# Flags here are pdqn's up to commit b6951e8 (the flat --dyna.* planning options): run this at that commit
# (git checkout b6951e8); docs/pdqn.md ("Flags of earlier versions") gives today's spelling of each.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=experiments/study-1m/runs
GAMES=${GAMES:-"breakout space_invaders"}
source experiments/train_point.sh
for game in $GAMES; do
  train_point "$OUT/$game-pdqn-half" --env "$game" --total-timesteps 1003520 --num-seeds 5 \
    --seed 5 --eval-envs 128 --alg pdqn "${FIRST_PDQN[@]}" --dyna.model-fraction 0.5 --dyna.model-minibatches 4 \
    --track.experiment pdqn-half
done
