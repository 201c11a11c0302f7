#!/usr/bin/env bash
# The screen of the Q-network's termination head with conv channels of its own (README.md here, "A termination head
# with channels of its own"; issue 31): the termination-model runs of termination-185-asterix/ (185 extra minibatches)
# and termination-seaquest/ (PQN's defaults) with --pqn.termination-head-channels 8 and the veto reading the head
# (--dyna.model q_head) instead of the termination model; seeds 0-4, 1M env steps, the veto at evaluation only (so
# each run's Q-network is its counterpart's); then veto.py on each run's final networks. Run directories live outside
# the repository (RUNS, default ../pdqn-own-head-runs), with checkpoints: rerunning skips finished runs and resumes
# stopped ones. The two games can run side by side: GAMES=asterix ... & GAMES=seaquest ...
# LABELS=every: the head learns every action's termination at every visited state, the untaken actions' from a step
# of a copy of the real state (--pqn.termination-head-labels every; a ceiling: only a simulator gives them);
# LABELLED=16: in 16 of the 128 environments only (--pqn.termination-head-labelled-envs 16).
# Reproduce from the repository root:
#   bash experiments/decision-time/own_head.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${RUNS:-../pdqn-own-head-runs}
KEEP=${KEEP:-experiments/decision-time/runs}
GAMES=${GAMES:-"asterix seaquest"}
CHANNELS=${CHANNELS:-8}
LABELS=${LABELS:-taken}
LABELLED=${LABELLED:-}   # with LABELS=every: how many of the 128 environments have every action labelled (empty: all)
COMMON=(--total-timesteps 1003520 --num-seeds 5 --seed 0 --eval-envs 128 --eval-every 0.1 --track.off --no-episode-gif)
source experiments/train_point.sh
for game in $GAMES; do
  case $game in
    asterix) extra=(--pqn.extra-minibatches 185); suffix=-185 ;;
    *) extra=(); suffix= ;;
  esac
  label=own-head-$CHANNELS$suffix
  [ "$LABELS" = taken ] || label=own-head-$CHANNELS-$LABELS${LABELLED:+-$LABELLED}$suffix
  labelled=(); [ -z "$LABELLED" ] || labelled=(--pqn.termination-head-labelled-envs "$LABELLED")
  point "$label" "$game" --alg pdqn "${extra[@]}" --pqn.termination-head-channels "$CHANNELS" \
    --pqn.termination-head-labels "$LABELS" "${labelled[@]}" --dyna.planner none \
    --dyna.model q_head --dyna.veto.threshold 0.5 --dyna.veto.no-training
  keep "$game" "$label"
  python experiments/decision-time/veto.py "$OUT/$game-$label" --thresholds 0.9 0.8 0.5 0.2 \
    --out "experiments/decision-time/$label-$game"
done
