#!/usr/bin/env bash
# Low-data study: PQN, PDQN (default config) and compute-matched PQN on all five MinAtar games,
# 1M env steps, held-out seeds 5-9 (never used for tuning; tuning used seeds 0-2), 5 seeds vmapped per run,
# greedy evaluation over 128 episodes at the end. Reproduce from the repository root:
#   bash experiments/study-1m/run.sh          (27-78 min per game on 2 shared CPU cores; finished points are skipped)
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=experiments/study-1m/runs
GAMES=${GAMES:-"breakout space_invaders freeway asterix seaquest"}
COMMON=(--total-timesteps 1003520 --num-seeds 5 --seed 5 --eval-envs 128)
# Compute-matched control: as many extra real-data gradient steps as PDQN's imagined ones.
MATCHED=$(python -c "from pdqn import DynaConfig as D; d=D(); print(d.plan_epochs*d.plan_minibatches)")
source experiments/train_point.sh
point() {  # point NAME GAME ARGS...
  local name=$1 game=$2; shift 2
  train_point "$OUT/$game-$name" --env "$game" "${COMMON[@]}" "$@"
}
for game in $GAMES; do
  point pqn "$game" --alg pqn "$@"
  point pdqn "$game" --alg pdqn "${FIRST_PDQN[@]}" "$@"  # the defaults of the time (train_point.sh)
  point pqn-matched "$game" --alg pqn --pqn.extra-minibatches "$MATCHED" "$@"
done
