#!/usr/bin/env bash
# The perfect-model diagnostic: is it the model, or how PDQN uses imagined data?
# PQN, compute-matched PQN (as many extra real-data gradient steps as PDQN's imagined ones), today's PDQN
# (learned gated ensemble) and PDQN with the oracle model (the real game stepped from the rollout's real states:
# same horizon, rollouts and gradient steps), on tuning seeds 0-2, all five games, 1M env steps.
# Reproduce from the repository root (finished points are skipped, stopped ones resumed):
#   bash experiments/oracle-diagnostic/run.sh
#   GAMES="asterix freeway" ONLY="pdqn" bash experiments/oracle-diagnostic/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=experiments/oracle-diagnostic/runs
GAMES=${GAMES:-"asterix freeway breakout space_invaders seaquest"}
COMMON=(--total-timesteps 1003520 --num-seeds 3 --seed 0 --eval-envs 128)
source experiments/train_point.sh
for game in $GAMES; do
  point pdqn "$game" --alg pdqn "${GATED_DYNA[@]}"  # PDQN's defaults of the time (train_point.sh)
  point pdqn-oracle "$game" --alg pdqn "${GATED_DYNA[@]}" --dyna.model oracle
  point pqn "$game" --alg pqn
  point pqn-matched "$game" --alg pqn --pqn.extra-minibatches 20
done
