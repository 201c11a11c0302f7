"""Grid sweeps: ``python -m pdqn.experiments.sweep --name NAME --grid FIELD=V1,V2 ... [--games G ...] -- [Config flags]``.

Every point of the grid (the product of all ``--grid`` values and ``--games``) trains one run with
``Config.num_seeds`` seeds vmapped in one program, into ``--out/NAME/<point>/``, tracked into the same
Aim repository (``--track.repo``) and tagged with the sweep name (``track.sweep``). Any other flag is a
normal Config flag (see ``python -m pdqn.experiments.minatar --help``) and applies to every point.

The prototype's grid of planning steps x planning delay on two games::

    python -m pdqn.experiments.sweep --name horizon-delay \\
        --grid dyna.horizon=2,5,10,20 --grid dyna.planning_delay=0,100,500,1000,5000 \\
        --games breakout space_invaders --alg pdqn --num-seeds 3 --total-timesteps 3000000

Running the same command again continues the sweep: a finished point (its summary.json) is reported done
without training, a stopped or killed point resumes from its newest checkpoint, the others start. A point
that fails (a value out of range, NaN, anything else) is recorded as failed with a one-line reason and the
sweep goes on (it is tried again by the next run). SIGINT/SIGTERM/SIGUSR2 checkpoint the running point and
stop the sweep.

Each point keeps its record in its own folder (point.json). ``points.parquet`` / ``points.csv`` in the sweep
folder merge every point's record; they are written by a run of the whole grid (after each point), by
``--status`` (which trains nothing) and by ``--launcher ... --wait`` when its jobs have ended.

Splitting a grid over machines: ``--shard I/N`` (or, in a SLURM job array, SLURM_ARRAY_TASK_ID and
SLURM_ARRAY_TASK_COUNT) runs only points I, I+N, I+2N, ... so N machines together cover the grid once; shards
write only their own points' folders.

On a SLURM cluster, ``--launcher submitit`` submits the unfinished points as one job array (a job per point,
``--slurm.*`` for its resources); each job trains its point as ``--shard`` would, and is requeued by submitit
when SLURM preempts it or its time runs out (after checkpointing; the requeued job resumes).
``--launcher submitit-local`` runs the same jobs as processes on this machine (to try it without a cluster).

Exit status: 0 when every point (of the shard) is done, 1 otherwise, 2 for bad input, 128+signal when stopped.
"""

import argparse
import dataclasses
import itertools
import json
import os
import re
import shutil
import signal
import socket
import sys
import time
import traceback
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from pdqn.checkpoint import list_checkpoints
from pdqn.cli import fail, parse
from pdqn.config import GAMES, Config, ConfigError
from pdqn.experiments.launch import (
    RequeuedJob,
    add_slurm_flags,
    array_name,
    hand_back,
    require_submitit,
    submit_array,
    wait_for,
)
from pdqn.rundir import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    METRICS_FILE,
    SUMMARY_FILE,
    RunDirError,
    config_dict,
    normalised,
    prepare,
    read_json,
    write_atomic,
)
from pdqn.runner import Interrupted, run
from pdqn.tracking import TrackingError, check_repo, make_hooks

POINTS_FILE = "points.parquet"
PROG = "python -m pdqn.experiments.sweep"
POINT_FILE = "point.json"
"""A point's record in its own folder: status, reason, seconds, where it last ran."""
LAUNCHERS = ("inline", "submitit", "submitit-local")


class SweepStopped(Exception):
    """A stop signal ended the sweep (the running point was checkpointed)."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")


# ---- the grid ---------------------------------------------------------------------------


def field_type(config: Any, path: str) -> Any:
    """The annotated type of a dotted config field, e.g. ``dyna.horizon``; ConfigError if there is none."""
    obj: Any = config
    parts = path.split(".")
    for i, part in enumerate(parts):
        names = {f.name for f in dataclasses.fields(obj)}
        if part not in names:
            raise ConfigError(f"--grid {path}: {'.'.join(parts[: i + 1])} is not a config field")
        if i < len(parts) - 1:
            obj = getattr(obj, part)
            if not dataclasses.is_dataclass(obj):
                raise ConfigError(f"--grid {path}: {'.'.join(parts[: i + 1])} is not a group of fields")
    hints = typing.get_type_hints(type(obj))
    return hints[parts[-1]]


def parse_value(kind: Any, text: str, path: str) -> Any:
    """Convert one grid value to the field's type (validation of its range happens in the Config)."""
    origin = typing.get_origin(kind)
    try:
        if kind is bool:
            lowered = text.lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return lowered in ("true", "1", "yes")
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
        if origin is typing.Literal:
            return text
        if kind is str:
            return text
    except ValueError:
        raise ConfigError(f"--grid {path}={text!r} is invalid: not a {getattr(kind, '__name__', kind)}") from None
    return text


def parse_grid(specs: list[str], base: Config) -> dict[str, list[Any]]:
    grid: dict[str, list[Any]] = {}
    for spec in specs:
        if "=" not in spec:
            raise ConfigError(f"--grid {spec!r} is invalid: write FIELD=V1,V2,... (e.g. dyna.horizon=2,5)")
        path, values = spec.split("=", 1)
        path = path.strip().replace("-", "_")
        if path in ("env", "num_seeds", "run_dir") or path.startswith("track."):
            raise ConfigError(f"--grid {path} cannot be swept (use --games for env; num_seeds is per point)")
        kind = field_type(base, path)
        items = [v.strip() for v in values.split(",") if v.strip()]
        if not items:
            raise ConfigError(f"--grid {spec!r} has no values")
        grid[path] = [parse_value(kind, v, path) for v in items]
    return grid


def with_value(config: Any, path: str, value: Any) -> Any:
    """``dataclasses.replace`` along a dotted path of nested frozen dataclasses (each re-validates)."""
    head, _, rest = path.partition(".")
    if not rest:
        return dataclasses.replace(config, **{head: value})
    return dataclasses.replace(config, **{head: with_value(getattr(config, head), rest, value)})


def point_label(values: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in values.items()) or "base"


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=,+-]+", "_", text)


def one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def point_config(base: Config, name: str, game: str, point: dict[str, Any]) -> Config:
    """The config of one grid point (every replaced value is validated again)."""
    config = dataclasses.replace(
        base,
        env=game,
        run_dir=None,
        track=dataclasses.replace(base.track, sweep=name, experiment=f"{name}:{point_label(point)}"),
    )
    for path, value in point.items():
        config = with_value(config, path, value)
    return config


@dataclasses.dataclass(frozen=True)
class Point:
    """One point of the grid: its place, game, values and folder."""

    index: int
    game: str
    values: dict[str, Any]
    run_dir: Path

    @property
    def label(self) -> str:
        return point_label(self.values)


@dataclasses.dataclass(frozen=True)
class Sweep:
    """A sweep: its name, the config every point starts from, the grid, the games and the parent folder."""

    name: str
    base: Config
    grid: dict[str, list[Any]]
    games: list[str]
    out: Path

    @property
    def folder(self) -> Path:
        return self.out / self.name

    def points(self) -> list[Point]:
        """Every point, in a fixed order (games first, then the grid's fields in the order given)."""
        keys, points = list(self.grid), []
        for index, (game, *rest) in enumerate(itertools.product(self.games, *(self.grid[k] for k in keys))):
            values = dict(zip(keys, rest))
            points.append(Point(index, game, values, self.folder / safe_name(f"{game}-{point_label(values)}")))
        return points

    def config(self, point: Point) -> Config:
        return point_config(self.base, self.name, point.game, point.values)


@dataclasses.dataclass(frozen=True)
class Shard:
    """Points ``index``, ``index + count``, ... of the grid."""

    index: int
    count: int

    def owns(self, point: Point) -> bool:
        return point.index % self.count == self.index

    def rows(self, table: pl.DataFrame) -> pl.DataFrame:
        """The rows of ``table`` (a points table) this shard owns."""
        return table.filter(pl.Series([index % self.count == self.index for index in table["point"]]))

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not 0 <= int(match[1]) < int(match[2]):
        raise ConfigError(f"--shard {text!r} is invalid: write I/N with 0 <= I < N (e.g. 0/4)")
    return Shard(int(match[1]), int(match[2]))


def slurm_shard(environ: Mapping[str, str]) -> Shard | None:
    """This task's share of the grid in a SLURM job array (``sbatch --array=0-(N-1)``); None outside one."""
    if "SLURM_ARRAY_TASK_ID" not in environ or "SLURM_ARRAY_TASK_COUNT" not in environ:
        return None
    try:
        task = int(environ["SLURM_ARRAY_TASK_ID"]) - int(environ.get("SLURM_ARRAY_TASK_MIN", "0"))
        return parse_shard(f"{task}/{int(environ['SLURM_ARRAY_TASK_COUNT'])}")
    except ValueError:
        raise ConfigError("SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT do not name a task of an array") from None


# ---- records ----------------------------------------------------------------------------


def base_record(sweep: Sweep, point: Point) -> dict[str, Any]:
    return {
        "sweep": sweep.name, "point": point.index, "game": point.game, "label": point.label,
        **{k: str(v) for k, v in point.values.items()}, "alg": sweep.base.alg, "num_seeds": sweep.base.num_seeds,
        "run_dir": str(point.run_dir), "status": "pending", "reason": "", "final_target_return": None,
        "final_behaviour_return": None, "seconds": None, "host": None, "pid": None,
    }  # fmt: skip


def finished(summary: dict[str, Any]) -> dict[str, Any]:
    """A finished point's record fields: its mean final greedy and behaviour returns over seeds."""
    behaviour = [v for v in summary["final_behaviour_return"] if v == v]
    return {
        "status": "done",
        "reason": "",
        "final_target_return": float(sum(summary["final_target_return"]) / len(summary["final_target_return"])),
        "final_behaviour_return": float(sum(behaviour) / len(behaviour)) if behaviour else None,
    }


def read_record(sweep: Sweep, point: Point) -> dict[str, Any]:
    """A point's record: its point.json over the defaults; ``done`` only with its summary.json, which also makes a
    point recorded as running or stopped done (it finished before its record was rewritten)."""
    record = base_record(sweep, point)
    path = point.run_dir / POINT_FILE
    if path.exists():
        try:
            saved = read_json(path, "point record", RunDirError)
            record |= {k: v for k, v in saved.items() if k in record}
        except RunDirError as err:
            record |= {"status": "failed", "reason": str(err)}
    summary = point.run_dir / SUMMARY_FILE
    if not summary.exists():
        if record["status"] == "done":
            record |= {"status": "pending", "reason": f"{summary} is missing"}
    elif record["status"] in ("pending", "running", "stopped"):  # it ended before its point.json said so
        try:
            record |= finished(read_json(summary, "summary", RunDirError))
        except (RunDirError, KeyError, TypeError, ZeroDivisionError) as err:
            record |= {"status": "failed", "reason": one_line(err)}
    return record


def write_record(point: Point, record: dict[str, Any]) -> None:
    point.run_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(point.run_dir / POINT_FILE, json.dumps(record, indent=2, allow_nan=True))


def points_table(sweep: Sweep) -> pl.DataFrame:
    """Every point's record, merged from the points' own files."""
    return pl.DataFrame([read_record(sweep, p) for p in sweep.points()], infer_schema_length=None)


def write_table(sweep: Sweep) -> pl.DataFrame:
    """``points.parquet`` and ``points.csv`` of the sweep folder (written by one process at a time)."""
    table = points_table(sweep)
    sweep.folder.mkdir(parents=True, exist_ok=True)
    write_atomic(sweep.folder / POINTS_FILE, table.write_parquet)
    write_atomic(sweep.folder / "points.csv", table.write_csv)
    return table


# ---- one point --------------------------------------------------------------------------


def finished_run(run_dir: Path, config: Config) -> dict[str, Any] | None:
    """The summary of the finished run in ``run_dir`` (None if it has none); RunDirError if another config made it."""
    path = run_dir / SUMMARY_FILE
    if not path.exists():
        return None
    summary = read_json(path, "summary", RunDirError)
    if normalised(summary.get("config")) != config_dict(config):
        raise RunDirError(f"{run_dir} holds a finished run of another config; use another --name or --out")
    return summary


def start_or_resume(run_dir: Path) -> bool:
    """Make ``run_dir`` ready to train; True when it resumes from a checkpoint. A run stopped before its first
    checkpoint starts again (its Aim runs, named in aim_runs.json, are continued)."""
    if list_checkpoints(run_dir):
        return True
    if (run_dir / CONFIG_FILE).exists() or (run_dir / METRICS_FILE).exists():
        for name in (CONFIG_FILE, METRICS_FILE):
            (run_dir / name).unlink(missing_ok=True)
        shutil.rmtree(run_dir / CHECKPOINT_DIR, ignore_errors=True)
    prepare(run_dir)
    return False


def is_done(sweep: Sweep, point: Point) -> bool:
    """Whether the point has finished with its config (its summary.json)."""
    try:
        return finished_run(point.run_dir, sweep.config(point)) is not None
    except (ConfigError, RunDirError):
        return False


def train_point(sweep: Sweep, point: Point, record: dict[str, Any], log: Any) -> bool:
    """Skip, resume or start the point's run; ``record`` gets its outcome (exceptions propagate). False when the
    point had already finished."""
    config = sweep.config(point)
    record["alg"] = config.alg
    summary = finished_run(point.run_dir, config)
    if summary is not None:
        record |= finished(summary)
        print(f"[sweep {sweep.name}] {point.game} {point.label}: done, skipped", file=log, flush=True)
        return False
    resume = start_or_resume(point.run_dir)
    record |= {"status": "running", "host": socket.gethostname(), "pid": os.getpid()}
    write_record(point, record)
    hooks = make_hooks(config, log)
    record |= finished(run(config, point.run_dir, log=log, hooks=hooks, resume=resume))
    return True


def run_point(sweep: Sweep, point: Point, log: Any) -> dict[str, Any]:
    """Train one point and record its outcome in point.json; a stop signal raises :class:`SweepStopped`."""
    previous = read_record(sweep, point)
    record = base_record(sweep, point)
    tick, trained = time.perf_counter(), True
    try:
        trained = train_point(sweep, point, record, log)
    except (Interrupted, KeyboardInterrupt) as err:
        signum = err.signum if isinstance(err, Interrupted) else signal.SIGINT
        record |= {"status": "stopped", "reason": f"{one_line(err)}; resumes from its checkpoint"}
        write_record(point, record | {"seconds": time.perf_counter() - tick})
        print(f"[sweep {sweep.name}] point {point.game} {point.label} {record['reason']}", file=log, flush=True)
        raise SweepStopped(signum) from None
    except Exception as err:  # a failing point never stops the sweep
        record |= {"status": "failed", "reason": one_line(err)}
        print(f"[sweep {sweep.name}] point {point.game} {point.label} failed: {record['reason']}", file=log, flush=True)
        if not isinstance(err, (ConfigError, RunDirError)):
            traceback.print_exc(limit=3, file=log)
    record["seconds"] = time.perf_counter() - tick if trained else previous["seconds"]
    record |= {} if trained else {k: previous[k] for k in ("host", "pid")}
    write_record(point, record)
    return record


def sweep(
    name: str,
    base: Config,
    grid: dict[str, list[Any]],
    games: list[str],
    out: Path,
    log: Any = None,
    shard: Shard | None = None,
) -> pl.DataFrame:
    """Run every point (of ``shard``); return the table of all points. Without a shard the table is written to
    the sweep folder after each point; a shard writes only its points' folders. ``log``: stderr by default."""
    log = sys.stderr if log is None else log
    spec = Sweep(name, base, grid, games, out)
    points = spec.points()
    spec.folder.mkdir(parents=True, exist_ok=True)
    for point in points:
        if shard is not None and not shard.owns(point):
            continue
        print(f"[sweep {name}] point {point.index + 1}/{len(points)}: {point.game} {point.label}", file=log, flush=True)
        try:
            run_point(spec, point, log)
        finally:
            if shard is None:
                write_table(spec)
    return points_table(spec)


# ---- points as jobs (submitit) ------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PointJob(RequeuedJob):
    """One point of a sweep as a submitit job: it trains the point exactly as ``--shard`` would, resuming from
    the point's checkpoint if it has one (so a requeued job continues the point)."""

    sweep: Sweep
    index: int

    def __call__(self) -> str:
        spec = self.sweep
        shard = Shard(self.index, len(spec.points()))  # this point alone, as `--shard` would run it
        try:
            table = sweep(spec.name, spec.base, spec.grid, spec.games, spec.out, shard=shard)
        except SweepStopped as err:
            hand_back(err.signum)  # the point is checkpointed: a SIGUSR2 requeues the job
            raise
        record = table.row(self.index, named=True)
        if record["status"] != "done":  # the job fails, so that SLURM and submitit say so
            what = f"point {self.index} ({record['game']} {record['label']})"
            raise RuntimeError(f"{what} {record['status']}: {record['reason']}")
        return "done"


def launch(spec: Sweep, shard: Shard | None, flags: argparse.Namespace, log: Any = None) -> int:
    """Submit the unfinished points (of ``shard``) as one job array, a job per point; with ``--wait``, wait for
    it and report like a sweep. A job killed outright loses only the updates since its point's last checkpoint:
    the same command again submits the points that are not done."""
    log = sys.stderr if log is None else log
    submitit = require_submitit(flags.launcher)
    todo = [p for p in spec.points() if (shard is None or shard.owns(p)) and not is_done(spec, p)]
    if not todo:
        print(f"[sweep {spec.name}] every point is done; nothing to submit", file=log, flush=True)
        table = write_table(spec) if shard is None else points_table(spec)
        return report(spec.name, table, spec.folder / POINTS_FILE, log)
    folder = flags.slurm_folder or spec.folder / "submitit"
    jobs = submit_array(submitit, [PointJob(spec, p.index) for p in todo], flags, spec.name, folder)
    what = array_name(jobs, flags.launcher)
    print(f"[sweep {spec.name}] submitted {len(jobs)} points as {what}; logs in {folder}", file=log, flush=True)
    if not flags.wait:
        print(f"[sweep {spec.name}] when they have ended, the same command with --status writes the table", file=log)
        return 0
    wait_for(jobs, flags.launcher)
    table = write_table(spec) if shard is None else points_table(spec)
    for job, point in zip(jobs, todo):
        record = table.row(point.index, named=True)
        if record["status"] != "done":
            print(f"[sweep {spec.name}] point {point.index} ({point.game} {point.label}): job {job.job_id} ended "
                  f"{job.state}, point {record['status']}; run the same command again to resume it", file=log)  # fmt: skip
    return report(spec.name, table if shard is None else shard.rows(table), spec.folder / POINTS_FILE, log)


# ---- the command line ---------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--name", required=True, help="sweep name: folder under --out and Aim tag (track.sweep)")
    parser.add_argument("--grid", action="append", default=[], metavar="FIELD=V1,V2", help="a config field and its values (repeatable)")
    parser.add_argument("--games", nargs="+", choices=GAMES, default=None, help="games to sweep over (default: --env)")
    parser.add_argument("--out", type=Path, default=Path("sweeps"), help="parent folder of the sweep folder (default: sweeps)")
    parser.add_argument("--shard", default=None, metavar="I/N", help="run only points I, I+N, ... (default: SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT in a job array, else all)")
    parser.add_argument("--status", action="store_true", help="train nothing: merge the points' records into points.parquet/csv and report")
    parser.add_argument("--launcher", choices=LAUNCHERS, default="inline", help="inline: train here, one point after another (default); submitit: a SLURM job array, a job per unfinished point; submitit-local: the same jobs as processes on this machine")
    parser.add_argument("--wait", action="store_true", help="with a submitit launcher: wait for the jobs, then write points.parquet/csv")
    add_slurm_flags(parser)
    return parser


def report(name: str, table: pl.DataFrame, where: Path, log: Any = None) -> int:
    """One line of counts (to ``log``, stderr by default); exit status 0 when every point of ``table`` is done."""
    log = sys.stderr if log is None else log
    counts = table.group_by("status").len().sort("status").iter_rows()
    summary = ", ".join(f"{n} {status}" for status, n in counts)
    print(f"[sweep {name}] {summary} of {table.height} points; table: {where}", file=log, flush=True)
    return 0 if table.filter(pl.col("status") != "done").height == 0 else 1


def parse_args(args: Sequence[str]) -> tuple[argparse.Namespace, Sweep, Shard | None]:
    """The command line's sweep, without creating or tracking anything; bad input exits 2 with one ``error:``
    line, --help exits 0."""
    ours, rest = build_parser().parse_known_args(list(args))
    if rest and rest[0] == "--":
        rest = rest[1:]
    if any(a == "--env" or a.startswith("--env=") for a in rest) and ours.games:
        fail("give the games with --games or --env, not both")
    base = parse(Config, rest, description=__doc__, prog=PROG)
    if base.run_dir is not None:
        fail("--run-dir is set per point by the sweep; use --out")
    if not re.fullmatch(r"[A-Za-z0-9_.+-]+", ours.name):
        fail(f"--name {ours.name!r} is invalid: use letters, digits and _ . + -")
    try:
        grid = parse_grid(ours.grid, base)
        shard = parse_shard(ours.shard) if ours.shard is not None else slurm_shard(os.environ)
    except ConfigError as err:
        fail(str(err))
    games = list(ours.games) if ours.games else [base.env]
    return ours, Sweep(ours.name, base, grid, games, ours.out), shard


def parse_command(argv: list[str]) -> tuple[argparse.Namespace, Sweep, Shard | None]:
    """:func:`parse_args`, then a check that the Aim repository the points will track into can be used."""
    ours, spec, shard = parse_args(argv)
    base = spec.base
    try:
        if not base.track.off and not ours.status:
            check_repo(dataclasses.replace(base, track=dataclasses.replace(base.track, sweep=spec.name)))
    except TrackingError as err:
        fail(str(err))
    return ours, spec, shard


def main(args: list[str] | None = None) -> int:
    argv = sys.argv[1:] if args is None else list(args)
    ours, spec, shard = parse_command(argv)
    where = spec.folder / POINTS_FILE
    if ours.status:
        return report(spec.name, write_table(spec), where)
    if ours.launcher != "inline":
        return launch(spec, shard, ours)
    try:
        table = sweep(spec.name, spec.base, spec.grid, spec.games, spec.out, shard=shard)
    except SweepStopped as err:
        print(f"[sweep {spec.name}] {err}; run the same command again to continue", file=sys.stderr)
        return 128 + err.signum
    if shard is not None:
        return report(f"{spec.name} shard {shard}", shard.rows(table), spec.folder / "<point>" / POINT_FILE)
    return report(spec.name, table, where)


if __name__ == "__main__":
    sys.exit(main())
