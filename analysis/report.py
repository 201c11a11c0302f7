"""Turn runs into a results table, aggregates and learning curves.

    python -m analysis.report --aim-repo .aim --out experiments/NAME
    python -m analysis.report --runs runs/pqn-breakout-1 runs/pdqn-breakout-1 --out experiments/NAME
    python -m analysis.report --aim-repo .aim --sweep horizon-delay --out experiments/horizon-delay

Writes to --out: ``runs.parquet`` (the tidy frame: game, alg, variant, seed, run_id, sweep, env_step,
metrics), ``final.parquet`` (one row per run), ``table.parquet`` and ``table.md`` (per game and variant,
plus the cross-game IQM and probability of improvement), ``aggregate.json`` (also the anchors and the
interval estimates), ``curves.png`` (learning curves per game), ``profiles.png`` / ``profiles.parquet``
(performance profiles), ``intervals.png`` (IQM, median, mean, optimality gap with 95 % CIs) and
``iqm_curve.png`` / ``iqm_curve.parquet`` (IQM of normalised greedy return over env steps).
Scores are normalised with fixed per-game anchors (``analysis.anchors``: 0 = random policy, 1 = the
reference in ``analysis/anchors/reference.csv``), so they do not depend on which runs are compared.
Bad input exits 2 with one ``error:`` line.
"""

import argparse
import json
import sys
from pathlib import Path

import polars as pl

from analysis.load import AnalysisError, load_aim, load_reference, load_run_dirs, require_metrics
from analysis.plots import interval_plot, iqm_curve_plot, learning_curves, profile_plot
from analysis.finals import final_returns
from analysis.stats import aggregate, iqm_over_steps, per_game_table, performance_profiles
from analysis.table import markdown_table

DEFAULT_REFERENCE = Path(__file__).resolve().parent.parent.parent / "shared" / "reference" / "prototype-minatar-curves.parquet"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m analysis.report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--aim-repo", type=Path, help="local Aim repository to read (e.g. .aim)")
    parser.add_argument("--runs", type=Path, nargs="+", default=[], help="run dirs or folders holding them (e.g. a sweep folder)")
    parser.add_argument("--sweep", default=None, help="only the runs of this sweep (Aim repository)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--window", type=int, default=10, help="smoothing window of the curves, in logged updates (default 10)")
    parser.add_argument("--reference", type=Path, default=None, help=f"prototype curves parquet to plot beside the runs (e.g. {DEFAULT_REFERENCE}); skipped if missing")
    parser.add_argument("--better", default="pdqn", help="variant for the probability of improvement (default pdqn)")
    parser.add_argument("--worse", default="pqn", help="baseline variant(s) for the probability of improvement and IQM difference, comma-separated (default pqn)")
    parser.add_argument("--variants", default="", help="keep only these variants, comma-separated (default: every variant found)")
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (default 2000)")
    return parser


def report(args: argparse.Namespace) -> dict:
    if args.aim_repo is None and not args.runs:
        raise AnalysisError("give --aim-repo PATH and/or --runs DIR ...")
    if args.window < 1 or args.resamples < 10:
        raise AnalysisError("--window must be >= 1 and --resamples >= 10")
    frames = []
    if args.aim_repo is not None:
        frames.append(load_aim(args.aim_repo, args.sweep))
    if args.runs:
        frames.append(load_run_dirs(args.runs))
    frame = pl.concat(frames, how="diagonal_relaxed").unique(["run_id", "env_step"], keep="first", maintain_order=True)
    if args.variants:
        frame = only_variants(frame, [v for v in args.variants.split(",") if v])
    require_metrics(frame)
    out: Path = args.out
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise AnalysisError(f"cannot create output folder {out}: {err.strerror}") from None
    frame.write_parquet(out / "runs.parquet")
    finals = final_returns(frame)
    finals.write_parquet(out / "final.parquet")
    table = per_game_table(finals, args.resamples)
    table.write_parquet(out / "table.parquet")
    aggregates = aggregate(finals, args.resamples, args.better, [w for w in args.worse.split(",") if w])
    env_steps = int(finals.select(pl.col("env_step").cast(pl.Int64).max()).item() or 0)
    reference = load_reference(args.reference, env_steps)
    if reference is not None:
        reference = reference.filter(pl.col("game").is_in(finals["game"].unique().to_list()))
        ref_table = per_game_table(final_returns(reference), args.resamples) if reference.height else None
        if ref_table is not None:
            table = pl.concat([table, ref_table], how="diagonal_relaxed").sort("game", "variant")
    text = markdown_table(table, aggregates, env_steps)
    if reference is not None:
        text += (
            "\nRows `prototype ...`: the earlier prototype's published curves cut at the same env step "
            "(its ε and LR schedules span 3e7 steps, so they are a reference, not a matched baseline).\n"
        )
    (out / "table.md").write_text(text)
    (out / "aggregate.json").write_text(json.dumps(aggregates, indent=2))
    learning_curves(frame, out / "curves.png", args.window, reference)
    write_aggregate_plots(frame, finals, aggregates, out, args.resamples)
    return {"runs": finals.height, "out": str(out), "table": text}


def write_aggregate_plots(frame: pl.DataFrame, finals: pl.DataFrame, aggregates: dict, out: Path, resamples: int) -> None:
    """profiles.png, intervals.png and iqm_curve.png, with the numbers behind the profile and the curve as parquet."""
    profiles = performance_profiles(finals, resamples)
    profiles.write_parquet(out / "profiles.parquet")
    profile_plot(profiles, out / "profiles.png")
    interval_plot(aggregates["intervals"], out / "intervals.png")
    curve = iqm_over_steps(frame, resamples)
    curve.write_parquet(out / "iqm_curve.parquet")
    iqm_curve_plot(curve, out / "iqm_curve.png")


def only_variants(frame: pl.DataFrame, variants: list[str]) -> pl.DataFrame:
    """The rows of the named variants; a name with no runs is an error, not an empty comparison."""
    found = set(frame["variant"].unique().to_list())
    missing = [v for v in variants if v not in found]
    if missing:
        raise AnalysisError(f"--variants: no runs of {', '.join(missing)} (found: {', '.join(sorted(found))})")
    kept = frame.filter(pl.col("variant").is_in(variants))
    # metrics only the dropped variants log would stay behind as all-null columns in runs.parquet
    return kept.select([c for c in kept.columns if kept[c].null_count() < kept.height])


def main(argv: list[str] | None = None) -> int:
    from pdqn.cli import fail

    args = build_parser().parse_args(argv)
    try:
        result = report(args)
    except AnalysisError as err:
        fail(str(err))
    print(result["table"])
    print(f"wrote {result['out']}/ (runs.parquet, final.parquet, table.md, aggregate.json, curves.png, profiles.png, intervals.png, iqm_curve.png) from {result['runs']} runs", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
