# Sourced by the experiment scripts (from the repository root).
# train_point DIR ARGS...: train one run into DIR with the given `pdqn.experiments.minatar` flags. A finished run
# (summary.json) is skipped, a run stopped part-way (it has a checkpoint) is resumed, anything else is started over.
# PDQN's first defaults (one model, every imagined step trusted, loss over the trusted rows), which the runs
# labelled `pdqn` were trained with; today's defaults are the gated ensemble of 3 (pdqn-ens3-gate-1-batch-mean).
FIRST_PDQN=(--dyna.ensemble-size 1 --dyna.max-disagreeing-cells None --dyna.imagined-loss-mean trusted)
train_point() {
  local dir=$1; shift
  if [ -f "$dir/summary.json" ]; then echo "skip $dir (done)"; return; fi
  if ls "$dir"/checkpoints/*.json >/dev/null 2>&1; then
    python -m pdqn.experiments.minatar --resume "$dir" 2>&1 | tail -n 1
    return
  fi
  rm -rf "$dir"
  python -m pdqn.experiments.minatar --run-dir "$dir" "$@" 2>&1 | tail -n 1
}
# point LABEL GAME ARGS...: one variant of a grid script on one game, trained into $OUT/GAME-LABEL with the script's
# COMMON flags and its label as the Aim experiment; ONLY="LABEL ..." restricts a script to those labels.
point() {
  local name=$1 game=$2; shift 2
  if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]]; then return; fi
  train_point "$OUT/$game-$name" --env "$game" "${COMMON[@]}" --track.experiment "$name" "$@"
}
