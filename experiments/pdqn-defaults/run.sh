#!/usr/bin/env bash
# Short sweep used to choose PDQN's defaults: 1M env steps, seeds 0-1 (tuning seeds),
# Breakout and SpaceInvaders. Each point writes runs/<game>-<name>/{summary.json,metrics.parquet}.
# Reproduce: bash experiments/pdqn-defaults/run.sh   (from the repository root; ~30 min on 2 CPU cores)
# Flags here are pdqn's up to commit b6951e8 (the flat --dyna.* planning options): run this at that commit
# (git checkout b6951e8); docs/pdqn.md ("Flags of earlier versions") gives today's spelling of each.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=experiments/pdqn-defaults/runs
COMMON=(--total-timesteps 1003520 --num-seeds 2 --seed 0 --track.off)
source experiments/train_point.sh
point() {  # point NAME GAME ARGS...
  local name=$1 game=$2; shift 2
  train_point "$OUT/$game-$name" --env "$game" "${COMMON[@]}" "$@"
}
for game in breakout space_invaders; do
  point pqn "$game" --alg pqn
  point pdqn-h1 "$game" --alg pdqn "${FIRST_PDQN[@]}" --dyna.model-fraction 0.5 --dyna.horizon 1 --dyna.num-rollouts 2560 --dyna.planning-delay 20
  point pdqn-h3 "$game" --alg pdqn "${FIRST_PDQN[@]}" --dyna.model-fraction 0.5 --dyna.horizon 3 --dyna.num-rollouts 860 --dyna.planning-delay 20
done
# The trust gate at 0.1 trusted no imagined step at all (imagined_trusted_fraction 0.0 throughout), so it
# was dropped after Breakout:
#   point pdqn-h1-trust0.1 breakout --alg pdqn --dyna.horizon 1 --dyna.num-rollouts 2560 --dyna.planning-delay 20 \
#     --dyna.max-cell-uncertainty 0.1
