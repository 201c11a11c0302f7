#!/usr/bin/env bash
# The fresh-seed study of issues 26 and 31, as its protocol in README.md here ("The fresh-seed study") fixes it:
# seeds 40-44 (never run before; 5 seeds vmapped in one run per variant and game), all five games, 1M env steps,
# greedy evaluation over 128 episodes every 10 % and at the end; PQN's defaults otherwise.
# Variants: pqn; pqn-matched (20 extra minibatches: PDQN's gradient steps); pqn-wallclock (240: the time per update
# of pqn-veto in the paired benchmark); pqn-reuse (its last 4 rollouts for 20 extra minibatches); pdqn (today's
# default); pqn-veto (185 extra minibatches + the termination model, vetoing at evaluation).
# Each run takes 10-40 minutes on the 2-core machine, so the run directories live outside the repository (RUNS,
# default ../pdqn-decision-time-study-runs beside the checkout) with checkpoints; rerunning the script skips finished
# runs and resumes stopped ones. As each run finishes its small outputs are copied into
# experiments/decision-time/study/runs/ for committing.
# Reproduce from the repository root:
#   bash experiments/decision-time/study.sh
#   ONLY="pqn-veto pqn-wallclock" GAMES="asterix" bash experiments/decision-time/study.sh
# Then the report (README.md here has the command and the table).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${RUNS:-../pdqn-decision-time-study-runs}
KEEP=${KEEP:-experiments/decision-time/study/runs}
GAMES=${GAMES:-"asterix seaquest space_invaders breakout freeway"}
COMMON=(--total-timesteps 1003520 --num-seeds 5 --seed 40 --eval-envs 128 --eval-every 0.1 --track.off --no-episode-gif)
source experiments/train_point.sh
variant() {  # variant LABEL GAME ARGS...: train one point and keep it
  point "$@"
  keep "$2" "$1"
}
for game in $GAMES; do
  variant pqn-veto "$game" --alg pdqn --pqn.extra-minibatches 185 --dyna.planner none --dyna.model termination \
    --dyna.veto.threshold 0.5 --dyna.veto.no-training
  variant pqn-wallclock "$game" --alg pqn --pqn.extra-minibatches 240
  variant pqn "$game" --alg pqn
  variant pqn-matched "$game" --alg pqn --pqn.extra-minibatches 20
  variant pqn-reuse "$game" --alg pqn --pqn.reuse-rollouts 4 --pqn.reuse-minibatches 20
  variant pdqn "$game" --alg pdqn
done
