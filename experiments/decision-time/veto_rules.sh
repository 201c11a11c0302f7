#!/usr/bin/env bash
# The veto-rule screen (README.md here, "A veto that prices false vetoes"; issue 31): the termination model with 185
# extra minibatches (the fresh-seed study's pqn-veto, the veto at evaluation only, so the Q-network never sees it) on
# seeds 0-4, 1M env steps, Breakout, Asterix and Seaquest; then veto.py on each run's final networks with every rule
# of the protocol, on the same 128 episodes per seed and rule. Run directories live outside the repository (RUNS,
# default ../pdqn-veto-rules-runs), with checkpoints: rerunning skips finished runs and resumes stopped ones.
# veto.py's --safe-thresholds and --risk-weighted were removed after the screen rejected both rules: run this script
# at commit 22728cb (git checkout 22728cb), where they exist.
# Reproduce from the repository root:
#   bash experiments/decision-time/veto_rules.sh
#   GAMES="breakout" bash experiments/decision-time/veto_rules.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${RUNS:-../pdqn-veto-rules-runs}
KEEP=${KEEP:-experiments/decision-time/veto-rules/runs}
GAMES=${GAMES:-"breakout asterix seaquest"}
COMMON=(--total-timesteps 1003520 --num-seeds 5 --seed 0 --eval-envs 128 --eval-every 0.1 --track.off --no-episode-gif)
source experiments/train_point.sh
for game in $GAMES; do
  point termination "$game" --alg pdqn --pqn.extra-minibatches 185 --dyna.planner none --dyna.model termination \
    --dyna.veto.threshold 0.5 --dyna.veto.no-training
  keep "$game" termination
  python experiments/decision-time/veto.py "$OUT/$game-termination" --thresholds 0.2 0.5 0.8 \
    --safe-thresholds 0.05 0.01 --risk-weighted --out "experiments/decision-time/veto-rules/$game"
done
