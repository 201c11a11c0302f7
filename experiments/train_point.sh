# Sourced by the experiment scripts (from the repository root).
# train_point DIR ARGS...: train one run into DIR with the given `pdqn.experiments.minatar` flags. A finished run
# (summary.json) is skipped, a run stopped part-way (it has a checkpoint) is resumed, anything else is started over.
# The Dyna planner with a model trained on the whole batch: PDQN before the counterfactual planner became its
# default (issue 14). Scripts whose runs used it spell it out, so that they reproduce whatever the defaults are later.
# The arrays below are spelled in pdqn's flags up to commit b6951e8 (the flat --dyna.* planning options): the
# scripts that use them run at that commit (git checkout b6951e8); train_point and point work with any version.
DYNA=(--dyna.planner dyna --dyna.model-fraction 1.0)
# Dyna's defaults before issue 14: the gated ensemble of 3 (the runs labelled pdqn-ens3-gate-1-batch-mean).
GATED_DYNA=("${DYNA[@]}" --dyna.ensemble-size 3 --dyna.max-disagreeing-cells 1 --dyna.imagined-loss-mean batch)
# PDQN's first defaults (Dyna, one model, every imagined step trusted, loss over the trusted rows), which the runs
# labelled `pdqn` of the early experiments were trained with.
FIRST_PDQN=("${DYNA[@]}" --dyna.ensemble-size 1 --dyna.max-disagreeing-cells None --dyna.imagined-loss-mean trusted)
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
# keep GAME LABEL: copy a finished run's small outputs (config, metrics, summary) from $OUT/GAME-LABEL into
# $KEEP/GAME-LABEL, for scripts whose run directories live outside the repository.
keep() {
  local dir=$OUT/$1-$2
  if [ -f "$dir/summary.json" ]; then
    mkdir -p "$KEEP/$1-$2"
    cp "$dir"/{config.json,metrics.parquet,summary.json} "$KEEP/$1-$2/"
  fi
}
