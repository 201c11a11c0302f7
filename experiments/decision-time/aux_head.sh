#!/usr/bin/env bash
# The screen of the Q-network's own termination head, trained by an auxiliary loss (README.md here, "A termination
# head trained with the Q-network"; issue 31): the termination-model runs of termination-185-asterix/ (185 extra
# minibatches) and termination-seaquest/ (PQN's defaults) with --pqn.termination-head-weight 1 and the veto reading
# the head (--dyna.model q_head) instead of the termination model; seeds 0-4, 1M env steps, the veto at evaluation
# only; then veto.py on each run's final networks. Run directories live outside the repository (RUNS, default
# ../pdqn-aux-head-runs), with checkpoints: rerunning skips finished runs and resumes stopped ones. The two games
# can run side by side: GAMES=asterix ... & GAMES=seaquest ... WEIGHT (default 1) is --pqn.termination-head-weight;
# another weight than 1 is in the runs' labels (aux-head-0.1-185, ...).
# --pqn.termination-head-weight and --dyna.model q_head were removed after the screen rejected them: run this script
# at commit 569f64e (git checkout 569f64e), where they exist; from a worktree of that commit, with PYTHONPATH=$PWD so
# that veto.py imports the worktree's pdqn rather than an installed one.
# Reproduce from the repository root:
#   bash experiments/decision-time/aux_head.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${RUNS:-../pdqn-aux-head-runs}
KEEP=${KEEP:-experiments/decision-time/runs}
GAMES=${GAMES:-"asterix seaquest"}
WEIGHT=${WEIGHT:-1}
COMMON=(--total-timesteps 1003520 --num-seeds 5 --seed 0 --eval-envs 128 --eval-every 0.1 --track.off --no-episode-gif)
source experiments/train_point.sh
for game in $GAMES; do
  case $game in
    asterix) extra=(--pqn.extra-minibatches 185); suffix=-185 ;;
    *) extra=(); suffix= ;;
  esac
  label=aux-head$([ "$WEIGHT" = 1 ] || echo "-$WEIGHT")$suffix
  point "$label" "$game" --alg pdqn "${extra[@]}" --pqn.termination-head-weight "$WEIGHT" --dyna.planner none \
    --dyna.model q_head --dyna.veto.threshold 0.5 --dyna.veto.no-training
  keep "$game" "$label"
  python experiments/decision-time/veto.py "$OUT/$game-$label" --thresholds 0.9 0.8 0.5 0.2 \
    --out "experiments/decision-time/$label-$game"
done
