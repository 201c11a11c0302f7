#!/usr/bin/env bash
# The main job's own budget (issue 29): default settings at the main job's 1e7 env steps, seeds 70-71 (two seeds
# vmapped in one run; never used by any other study), PQN and PDQN's default, on Asterix, Breakout, Freeway and
# SpaceInvaders (Seaquest if time allows: GAMES="seaquest"). Greedy evaluation over 128 episodes every 5 % (the
# defaults). Each run takes hours on a 2-core machine, so the run directories live outside the repository (RUNS,
# default ../pdqn-study-1e7-runs beside the checkout) with checkpoints; rerunning the script skips finished runs and
# resumes stopped ones. As each run finishes its small outputs (config, metrics, summary) are copied into
# experiments/study-1e7/runs/ for committing.
# Reproduce from the repository root:
#   bash experiments/study-1e7/run.sh
#   ONLY="pqn" GAMES="breakout asterix" bash experiments/study-1e7/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${RUNS:-../pdqn-study-1e7-runs}
KEEP=${KEEP:-experiments/study-1e7/runs}
GAMES=${GAMES:-"breakout asterix freeway space_invaders"}
COMMON=(--seed 70 --num-seeds 2 --track.off)
source experiments/train_point.sh
for game in $GAMES; do
  for alg in pqn pdqn; do
    point "$alg" "$game" --alg "$alg"
    keep "$game" "$alg"
  done
done
