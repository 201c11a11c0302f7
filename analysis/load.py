"""Load runs into one tidy polars frame: one row per run and env step, one column per metric.

Columns: ``game``, ``alg``, ``variant`` (what is compared: the algorithm, or ``alg label`` for a
sweep point), ``seed``, ``run_id``, ``sweep``, ``env_step``, then the metric columns of
``metrics.parquet`` (``behaviour_return``, ``target_return``, ``td_loss``, ...).
"""

import json
import warnings
from pathlib import Path

import polars as pl

from pdqn.config import GAMES
from pdqn.envs import gymnax_id
from pdqn.metrics import BEHAVIOUR_RETURN, TARGET_RETURN

KEYS = ["game", "alg", "variant", "seed", "run_id", "sweep", "env_step"]
REFERENCE_GAMES = {gymnax_id(game).removesuffix("-MinAtar"): game for game in GAMES}
"""The prototype's game names (gymnax's, e.g. ``SpaceInvaders``) -> ours."""


class AnalysisError(ValueError):
    """Input the analysis cannot use (reported as one ``error:`` line, exit code 2)."""


def variant_of(alg: str, sweep: str, experiment: str, extra_minibatches: int = 0, label: str = "") -> str:
    """The compared unit: an explicit ``--track.experiment`` label if the run has one, else the
    algorithm (``pqn-matched`` for the compute-matched control, PQN with extra real-data gradient
    steps); for a sweep point ``<that> <grid values>``."""
    base = label or ("pqn-matched" if alg == "pqn" and extra_minibatches > 0 else alg)
    if sweep and experiment.startswith(sweep + ":"):
        return f"{base} {experiment[len(sweep) + 1:]}"
    return base


def _label(config: object) -> str:
    """The run's explicit ``--track.experiment`` (empty when it was left to its default)."""
    track = config.get("track", {}) if isinstance(config, dict) else {}
    if not isinstance(track, dict) or track.get("sweep"):
        return ""
    return str(track.get("experiment", "") or "")


def _extra_minibatches(config: object) -> int:
    pqn = config.get("pqn", {}) if isinstance(config, dict) else {}
    return int(pqn.get("extra_minibatches", 0) or 0) if isinstance(pqn, dict) else 0


def _tidy(frame: pl.DataFrame) -> pl.DataFrame:
    metrics = sorted(c for c in frame.columns if c not in KEYS and c not in ("update",))
    return frame.select(
        pl.col("game").cast(pl.Utf8),
        pl.col("alg").cast(pl.Utf8),
        pl.col("variant").cast(pl.Utf8),
        pl.col("seed").cast(pl.Int64),
        pl.col("run_id").cast(pl.Utf8),
        pl.col("sweep").cast(pl.Utf8),
        pl.col("env_step").cast(pl.Int64),
        *[pl.col(m).cast(pl.Float64) for m in metrics],
    ).sort(["game", "variant", "seed", "run_id", "env_step"])


def load_aim(repo: str | Path, sweep: str | None = None) -> pl.DataFrame:
    """Every pdqn run of a local Aim repository (optionally only one sweep) as a tidy frame."""
    import aim

    from pdqn.tracking import metric_arrays

    path = Path(repo)
    if not path.is_dir() or not ((path / "VERSION").exists() or (path / ".aim").is_dir()):
        raise AnalysisError(f"Aim repository {path} does not exist (no Aim repository there)")
    store = aim.Repo.from_path(str(path))
    frames = []
    for run_hash in store.list_all_runs():
        run = store.get_run(run_hash)
        if run is None or run.get("alg") is None or run.get("game") is None:
            continue
        run_sweep = run.get("sweep") or ""
        if sweep is not None and run_sweep != sweep:
            continue
        columns: dict[str, pl.DataFrame] = {}
        for metric in run.metrics():
            if metric.name.startswith("__"):
                continue
            steps, values = metric_arrays(metric)
            columns[metric.name] = pl.DataFrame({"env_step": steps, metric.name: values})
        if not columns:
            continue
        steps_frame = pl.concat([f.select("env_step") for f in columns.values()]).unique()
        wide = steps_frame
        for frame in columns.values():
            wide = wide.join(frame, on="env_step", how="left")
        wide = wide.with_columns(
            game=pl.lit(run["game"]),
            alg=pl.lit(run["alg"]),
            variant=pl.lit(
                variant_of(
                    str(run["alg"]),
                    str(run_sweep),
                    run.experiment or "",
                    _extra_minibatches(run.get("hparams") or {}),
                    _label(run.get("hparams") or {}),
                )
            ),
            seed=pl.lit(int(str(run["seed"]))),
            run_id=pl.lit(run_hash),
            sweep=pl.lit(run_sweep),
        )
        frames.append(wide.with_columns(pl.col(c).fill_null(float("nan")) for c in columns))
    if not frames:
        raise AnalysisError(f"Aim repository {path} holds no pdqn runs" + (f" of sweep {sweep!r}" if sweep else ""))
    return _tidy(pl.concat(frames, how="diagonal_relaxed"))


class UnfinishedRunWarning(UserWarning):
    """A run directory without ``summary.json`` was read: its final numbers are its last logged ones."""


def _run_config(run_dir: Path) -> dict:
    for name in ("summary.json", "config.json"):
        file = run_dir / name
        if file.exists():
            data = json.loads(file.read_text())
            return data.get("config", data)
    raise AnalysisError(f"run dir {run_dir} has metrics.parquet but neither summary.json nor config.json")


def load_run_dirs(paths: list[str | Path]) -> pl.DataFrame:
    """Runs from run directories (``metrics.parquet`` + config), searched recursively (sweep folders)."""
    frames = []
    for given in paths:
        root = Path(given)
        if not root.exists():
            raise AnalysisError(f"run dir {root} does not exist")
        found = [root / "metrics.parquet"] if (root / "metrics.parquet").exists() else sorted(root.rglob("metrics.parquet"))
        if not found:
            raise AnalysisError(f"no metrics.parquet under {root}")
        for metrics in found:
            run_dir = metrics.parent
            config = _run_config(run_dir)
            if not (run_dir / "summary.json").exists():
                warnings.warn(
                    f"{run_dir} has no summary.json (still training or stopped): its last logged update counts as final",
                    UnfinishedRunWarning,
                    stacklevel=2,
                )
            track = config.get("track", {})
            rows = pl.read_parquet(metrics)
            sweep = track.get("sweep", "") or ""
            frames.append(
                rows.with_columns(
                    game=pl.lit(config["env"]),
                    alg=pl.lit(config["alg"]),
                    variant=pl.lit(
                        variant_of(
                            config["alg"],
                            sweep,
                            track.get("experiment", "") or "",
                            _extra_minibatches(config),
                            "" if sweep else (track.get("experiment", "") or ""),
                        )
                    ),
                    run_id=pl.format("{}#seed{}", pl.lit(str(run_dir)), pl.col("seed")),
                    sweep=pl.lit(sweep),
                )
            )
    return _tidy(pl.concat(frames, how="diagonal_relaxed"))


def require_metrics(frame: pl.DataFrame, names: tuple[str, ...] = (BEHAVIOUR_RETURN.name, TARGET_RETURN.name)) -> None:
    """Raise AnalysisError naming the runs that lack a needed metric (missing column or no finite value)."""
    for name in names:
        if name not in frame.columns:
            raise AnalysisError(f"metric {name} is missing from every run")
        finite = frame.group_by("run_id").agg(pl.col(name).is_finite().any().alias("ok"))
        bad = finite.filter(~pl.col("ok"))["run_id"].to_list()
        if bad:
            shown = ", ".join(sorted(bad)[:3]) + (" ..." if len(bad) > 3 else "")
            raise AnalysisError(f"metric {name} has no value in {len(bad)} run(s): {shown}")


def load_reference(path: str | Path | None, max_env_step: int | None = None) -> pl.DataFrame | None:
    """The prototype's published curves in the tidy layout (variant ``prototype <alg>``); None if absent."""
    if path is None or not Path(path).exists():
        return None
    ref = pl.read_parquet(path)
    wide = (
        ref.with_columns(pl.col("game").replace_strict(REFERENCE_GAMES, default=pl.col("game").str.to_lowercase()))
        .pivot(on="policy", index=["game", "algorithm", "run", "env_step"], values="episode_return", aggregate_function="first")
        .rename({"behaviour": BEHAVIOUR_RETURN.name, "target": TARGET_RETURN.name})
    )
    if max_env_step is not None:
        wide = wide.filter(pl.col("env_step") <= max_env_step)
    runs = wide.select("run").unique().sort("run").with_row_index("seed")
    out = wide.join(runs, on="run").with_columns(
        alg=pl.col("algorithm"),
        variant=pl.format("prototype {}", pl.col("algorithm")),
        run_id=pl.format("prototype-{}-{}-{}", pl.col("game"), pl.col("algorithm"), pl.col("run")),
        sweep=pl.lit("reference"),
    )
    return _tidy(out.drop("algorithm", "run"))
