#!/usr/bin/env bash
# Screening the planners of the "planning that pays" issue on tuning seeds 0-2 (the oracle diagnostic's seeds, so
# its PQN, compute-matched PQN, PDQN and oracle-Dyna runs are this screen's baselines), all five games, 1M env
# steps, greedy evaluation over 128 episodes every 10 % and at the end. Reproduce from the repository root:
#   bash experiments/planner-screen/run.sh        (finished points are skipped, stopped ones resumed)
#   ONLY="ve" GAMES="breakout" bash experiments/planner-screen/run.sh
# Flags here are pdqn's up to commit b6951e8 (the flat --dyna.* planning options): run this at that commit
# (git checkout b6951e8); docs/pdqn.md ("Flags of earlier versions") gives today's spelling of each.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=experiments/planner-screen/runs
GAMES=${GAMES:-"asterix freeway breakout space_invaders seaquest"}
COMMON=(--alg pdqn --total-timesteps 1003520 --num-seeds 3 --seed 0 --eval-envs 128 --eval-every 0.1 --dyna.model-fraction 1.0)
ONE=(--dyna.ensemble-size 1 --dyna.max-disagreeing-cells None)
UNGATED=(--dyna.counterfactual-max-wrong-cells None)  # every counterfactual row counts (the default until cfa-gate-0 won)
REPLACE=(--dyna.counterfactual-rows replace)  # counterfactual rows in place of real ones (the default until cfa-gate-0-add won)
CONV=(--dyna.architecture conv --dyna.model-fraction 0.25 --dyna.model-minibatches 8)
source experiments/train_point.sh
for game in $GAMES; do
  # value expansion: 20 extra minibatches on real transitions (as compute-matched PQN) toward targets expanded by
  # 2 imagined greedy steps from the real next state, 2 sampled rollouts, weighted by their spread in value
  point ve "$game" --dyna.planner value_expansion --dyna.horizon 2 "${ONE[@]}"
  point ve-oracle "$game" --dyna.planner value_expansion --dyna.horizon 2 --dyna.model oracle  # its ceiling: a perfect model
  # counterfactual actions: the compute-matched control's 20 extra real minibatches, a quarter of whose rows are
  # one-step model transitions for actions the behaviour policy did not take at real states of the batch
  # (cf, cf-conv: the model's own outcome; cfa, cfa-conv: anchored on the real next step, changed where the model
  # says the untaken action differs from the taken one); conv: the structured (per-cell) model, trained on a quarter
  # of each batch in minibatches of 128
  point cf "$game" --dyna.planner counterfactual "${ONE[@]}" --dyna.no-counterfactual-anchor "${UNGATED[@]}" "${REPLACE[@]}"
  point cf-conv "$game" --dyna.planner counterfactual "${ONE[@]}" "${CONV[@]}" --dyna.no-counterfactual-anchor "${UNGATED[@]}" "${REPLACE[@]}"
  point cfa "$game" --dyna.planner counterfactual "${ONE[@]}" "${UNGATED[@]}" "${REPLACE[@]}"
  point cfa-conv "$game" --dyna.planner counterfactual "${ONE[@]}" "${CONV[@]}" "${UNGATED[@]}" "${REPLACE[@]}"
  # anchored rows count only where the model reproduces the taken action's real outcome there (0 or 2 wrong cells)
  point cfa-gate-0 "$game" --dyna.planner counterfactual "${ONE[@]}" --dyna.counterfactual-max-wrong-cells 0 "${REPLACE[@]}"
  point cfa-gate-2 "$game" --dyna.planner counterfactual "${ONE[@]}" --dyna.counterfactual-max-wrong-cells 2 "${REPLACE[@]}"
  # the gated rows on top of the compute-matched control's full real minibatches rather than in place of a quarter
  point cfa-gate-0-add "$game" --dyna.planner counterfactual "${ONE[@]}" --dyna.counterfactual-max-wrong-cells 0 --dyna.counterfactual-rows add
  point cfa-gate-0-add-conv "$game" --dyna.planner counterfactual "${ONE[@]}" "${CONV[@]}" --dyna.counterfactual-max-wrong-cells 0 --dyna.counterfactual-rows add  # with the structured model
  # the model on half of each batch (8 minibatches of 256): half the model's cost
  point cfa-model-0.5 "$game" --dyna.planner counterfactual "${ONE[@]}" --dyna.model-fraction 0.5 "${UNGATED[@]}" "${REPLACE[@]}"
  point cfa-share-0.5 "$game" --dyna.planner counterfactual "${ONE[@]}" --dyna.counterfactual-share 0.5 "${UNGATED[@]}" "${REPLACE[@]}"
  point cf-oracle "$game" --dyna.planner counterfactual --dyna.model oracle "${REPLACE[@]}"  # its ceiling: a perfect model
  point cf-oracle-add "$game" --dyna.planner counterfactual --dyna.model oracle  # the ceiling of the default (rows added)
done
