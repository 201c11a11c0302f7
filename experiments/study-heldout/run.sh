#!/usr/bin/env bash
# The held-out study of the "planning that pays" issue: PQN, compute-matched PQN (20 extra real minibatches per
# update: as many Q-network gradient steps as PDQN), wall-clock-matched PQN (as many extra real minibatches as fit
# in PDQN's time per update: 42, from the paired benchmarks in README.md here) and PDQN with the defaults of the time
# (the anchored counterfactual planner, ungated, rows in place of real ones), all five games, 1M env steps, fresh
# seeds 10-14 (never run before this study; nothing was chosen on them), 5 seeds vmapped per run, greedy evaluation
# over 128 episodes every 10 % and at the end.
# Reproduce from the repository root (finished points are skipped, stopped ones resumed):
#   bash experiments/study-heldout/run.sh
#   ONLY="pqn pqn-matched" GAMES="asterix" bash experiments/study-heldout/run.sh
# Flags here are pdqn's up to commit b6951e8 (the flat --dyna.* planning options): run this at that commit
# (git checkout b6951e8); docs/pdqn.md ("Flags of earlier versions") gives today's spelling of each.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=experiments/study-heldout/runs
GAMES=${GAMES:-"asterix breakout freeway space_invaders seaquest"}
PROTOCOL=(--total-timesteps 1003520 --num-seeds 5 --eval-envs 128 --eval-every 0.1)
COMMON=("${PROTOCOL[@]}" --seed 10)
source experiments/train_point.sh
for game in $GAMES; do
  point pqn "$game" --alg pqn
  point pqn-matched "$game" --alg pqn --pqn.extra-minibatches 20
  point pqn-wallclock "$game" --alg pqn --pqn.extra-minibatches 42
  point pdqn "$game" --alg pdqn --dyna.counterfactual-max-wrong-cells None --dyna.counterfactual-rows replace  # the default then
done
# Added after the study: the gated counterfactual planner that the planner screen preferred later (a row counts only
# where the model reproduces the taken action's real step exactly). Seeds 15-19, never run before: 10-14 had been
# looked at; its controls are the arms above (independent seeds, unpaired comparisons).
COMMON=("${PROTOCOL[@]}" --seed 15)
for game in $GAMES; do
  point pdqn-gate-0 "$game" --alg pdqn --dyna.counterfactual-max-wrong-cells 0 --dyna.counterfactual-rows replace
done
# Added after those: the gated rows on top of full real minibatches (`--dyna.counterfactual-rows add`), which the
# planner screen preferred to rows in place of real ones (tuning seeds 0-2). Seeds 30-34, never run before (20-29 are
# the GPU study's).
COMMON=("${PROTOCOL[@]}" --seed 30)
for game in $GAMES; do
  point pdqn-add "$game" --alg pdqn --dyna.counterfactual-max-wrong-cells 0 --dyna.counterfactual-rows add
  point pqn-matched-30 "$game" --alg pqn --pqn.extra-minibatches 20  # its compute-matched control on the same seeds
done
