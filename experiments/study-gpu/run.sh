#!/usr/bin/env bash
# Full-budget study for a machine with one NVIDIA GPU: all five games, 1e7 env steps, 10 seeds (vmapped in one
# program per run), PQN and PDQN (defaults), greedy evaluation over 128 episodes every 5 % and at the end.
# Wall-clock per run lands in each run's summary.json (compile_seconds, train_seconds).
# From the repository root, after `pip install -e ".[cuda]"`:
#   bash experiments/study-gpu/run.sh                      (finished points are skipped)
#   python -m analysis.report --runs experiments/study-gpu/runs --out experiments/study-gpu/report --window 10
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=experiments/study-gpu/runs
GAMES=${GAMES:-"asterix breakout freeway space_invaders seaquest"}
python -c "import jax; d = jax.devices()[0]; print('device:', d.platform, d.device_kind)"
source experiments/train_point.sh
for game in $GAMES; do
  for alg in pqn pdqn; do
    train_point "$OUT/$game-$alg" --alg "$alg" --env "$game" --num-seeds 10 --seed 10 \
      --total-timesteps 10000000 --eval-envs 128 --track.off
  done
done
