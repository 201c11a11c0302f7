#!/bin/sh
# Flags here are pdqn's up to commit b6951e8 (the flat --dyna.* planning options): run this at that commit
# (git checkout b6951e8); docs/pdqn.md ("Flags of earlier versions") gives today's spelling of each.
set -e
cd "$(dirname "$0")"
for game in breakout space_invaders; do
  for alg in pqn pdqn; do
    /work/venv/bin/python -m pdqn.experiments.minatar --alg $alg --env $game --total-timesteps 20480 --num-seeds 2 \
      --pqn.num-envs 16 --pqn.num-steps 16 --pqn.num-minibatches 4 --pqn.num-epochs 1 --eval-envs 16 --eval-every 0.1 \
      --dyna.num-rollouts 64 --dyna.horizon 4 --dyna.plan-minibatches 4 --dyna.model-minibatches 4 --dyna.planning-delay 10 \
      --track.repo .aim --run-dir runs/$alg-$game
  done
done
