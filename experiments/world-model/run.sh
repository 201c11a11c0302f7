#!/usr/bin/env bash
# World-model accuracy on a PQN run's own data: every variant trains its model online, one pass over each update's
# fresh real batch, while the Q-network learns exactly as PQN does (planning never starts: the delay outlasts
# training, so every variant sees the same data stream). Model metrics are measured on each update's batch
# before the model trains on it. 1M env steps, seed 0. Reproduce from the repository root:
#   bash experiments/world-model/run.sh && python experiments/world-model/summarise.py
# Flags here are pdqn's up to commit b6951e8 (the flat --dyna.* planning options): run this at that commit
# (git checkout b6951e8); docs/pdqn.md ("Flags of earlier versions") gives today's spelling of each.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=experiments/world-model/runs
GAMES=${GAMES:-"breakout space_invaders freeway asterix seaquest"}
source experiments/train_point.sh
# Planning never starts (delay > 245 updates); the imagination the planner still computes is made tiny.
COMMON=(--alg pdqn --total-timesteps 1003520 --num-seeds 1 --seed 0 --eval-envs 32 --eval-every 1.0 --no-episode-gif
        "${DYNA[@]}" --dyna.planning-delay 100000 --dyna.horizon 1 --dyna.num-rollouts 20 --dyna.plan-minibatches 1)
ONE=(--dyna.ensemble-size 1 --dyna.max-disagreeing-cells None)
CONV=(--dyna.architecture conv --dyna.model-features 32 --dyna.model-fraction 0.25)
for game in $GAMES; do
  point mlp128-ens3 "$game" --dyna.ensemble-size 3 --dyna.max-disagreeing-cells 1       # Dyna's default model
  point mlp128 "$game" "${ONE[@]}"
  point mlp256 "$game" "${ONE[@]}" --dyna.model-hidden 256
  # the structured model: every cell from its 5x5 neighbourhood (pdqn/conv_dynamics.py), on a quarter of each batch in
  # 8 minibatches of 128 (as many steps as the MLPs take, on a quarter of the rows)
  point conv32 "$game" "${ONE[@]}" "${CONV[@]}"
done
# The input: four stacked frames (`--frame-stack 4`: the Q-network sees them too, so the data stream is its own) on the
# games whose next frame one frame cannot determine (hidden timers, experiments/model-history/)
for game in $GAMES; do
  case $game in freeway|space_invaders|asterix) ;; *) continue ;; esac
  point mlp128-frames-4 "$game" "${ONE[@]}" --frame-stack 4
  point conv32-frames-4 "$game" "${ONE[@]}" --frame-stack 4 "${CONV[@]}"
done
