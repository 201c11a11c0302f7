#!/usr/bin/env bash
# Next candidate on the study's protocol (held-out seeds 5-9, 1M steps, 5 seeds vmapped): PDQN with an ensemble
# of 3 models, an imagined step trusted while the members differ in at most 1 cell, and the imagined TD loss
# averaged over whole minibatches (screened on tuning seeds in experiments/pdqn-ablations/). All five games are
# finished; the variant became PDQN's default, and its flags stay spelled out so the runs reproduce whatever the
# defaults are later.
# Reproduce from the repository root: bash experiments/study-1m/candidate.sh   (finished games are skipped,
# stopped ones resumed)
# Flags here are pdqn's up to commit b6951e8 (the flat --dyna.* planning options): run this at that commit
# (git checkout b6951e8); docs/pdqn.md ("Flags of earlier versions") gives today's spelling of each.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=experiments/study-1m/runs
GAMES=${GAMES:-"breakout space_invaders freeway asterix seaquest"}
source experiments/train_point.sh
for game in $GAMES; do
  train_point "$OUT/$game-pdqn-ens3-gate-1-batch-mean" --env "$game" --total-timesteps 1003520 --num-seeds 5 \
    --seed 5 --eval-envs 128 --alg pdqn "${DYNA[@]}" --dyna.ensemble-size 3 --dyna.max-disagreeing-cells 1 \
    --dyna.imagined-loss-mean batch --track.experiment pdqn-ens3-gate-1-batch-mean
done
