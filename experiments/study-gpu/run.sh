#!/usr/bin/env bash
# Full-budget study for a machine with one NVIDIA GPU: all five games, 1e7 env steps, 10 seeds (vmapped in one
# program per run), PQN, compute-matched PQN (20 extra real minibatches per update: PDQN's gradient steps) and PDQN
# (today's defaults), greedy evaluation over 128 episodes every 5 % and at the end. Seeds 20-29: the CPU studies
# used 0-4 (tuning), 5-9 and 10-14 (held out). Wall-clock per run lands in each run's summary.json
# (compile_seconds, train_seconds). From the repository root, after `pip install -e ".[cuda]"`:
#   bash experiments/study-gpu/run.sh                      (finished points are skipped, stopped ones resumed)
#   GAMES=breakout ONLY="pqn pdqn" bash experiments/study-gpu/run.sh
#   python -m analysis.report --runs experiments/study-gpu/runs --out experiments/study-gpu/report --window 10 \
#     --better pdqn --worse pqn,pqn-matched
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=experiments/study-gpu/runs
GAMES=${GAMES:-"asterix breakout freeway space_invaders seaquest"}
COMMON=(--num-seeds 10 --seed 20 --total-timesteps 10000000 --eval-envs 128 --eval-every 0.05 --track.off)
python -c "import jax; d = jax.devices()[0]; print('device:', d.platform, d.device_kind)"
source experiments/train_point.sh
for game in $GAMES; do
  point pqn "$game" --alg pqn
  point pqn-matched "$game" --alg pqn --pqn.extra-minibatches 20
  point pdqn "$game" --alg pdqn
done
