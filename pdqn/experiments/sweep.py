"""Grid sweeps: ``python -m pdqn.experiments.sweep --name NAME --grid FIELD=V1,V2 ... [--games G ...] -- [Config flags]``.

Every point of the grid (the product of all ``--grid`` values and ``--games``) trains one run with
``Config.num_seeds`` seeds vmapped in one program, into ``--out/NAME/<point>/``, tracked into the same
Aim repository (``--track.repo``) and tagged with the sweep name (``track.sweep``). Any other flag is a
normal Config flag (see ``python -m pdqn.experiments.minatar --help``) and applies to every point.

The prototype's grid of planning steps x planning delay on two games::

    python -m pdqn.experiments.sweep --name horizon-delay \\
        --grid dyna.horizon=2,5,10,20 --grid dyna.planning_delay=0,100,500,1000,5000 \\
        --games breakout space_invaders --alg pdqn --num-seeds 3 --total-timesteps 3000000

A point that fails (a value out of range, NaN, anything else) is recorded as failed with a one-line
reason and the sweep goes on. ``points.parquet`` / ``points.csv`` in the sweep folder list every point
with its status, rewritten after each point. Exit status: 0 when every point finished, 1 otherwise,
2 for bad input.
"""

import argparse
import dataclasses
import itertools
import re
import sys
import time
import traceback
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from pdqn.cli import fail, parse
from pdqn.config import GAMES, Config, ConfigError
from pdqn.rundir import RunDirError, prepare, write_atomic
from pdqn.runner import run
from pdqn.tracking import TrackingError, check_repo, make_hooks

POINTS_FILE = "points.parquet"
PROG = "python -m pdqn.experiments.sweep"


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
    return parser


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


def finished(summary: dict[str, Any]) -> dict[str, Any]:
    """A finished point's record fields: its mean final greedy and behaviour returns over seeds."""
    behaviour = [v for v in summary["final_behaviour_return"] if v == v]
    return {
        "status": "done",
        "final_target_return": float(sum(summary["final_target_return"]) / len(summary["final_target_return"])),
        "final_behaviour_return": float(sum(behaviour) / len(behaviour)) if behaviour else None,
    }


def sweep(
    name: str,
    base: Config,
    grid: dict[str, list[Any]],
    games: list[str],
    out: Path,
    log: Any = sys.stderr,
) -> pl.DataFrame:
    """Run every point; return (and keep writing) the table of points with their status."""
    sweep_dir = out / name
    sweep_dir.mkdir(parents=True, exist_ok=True)
    keys = list(grid)
    records: list[dict[str, Any]] = []

    def write_table() -> None:
        table = pl.DataFrame(records, infer_schema_length=None)
        write_atomic(sweep_dir / POINTS_FILE, table.write_parquet)
        write_atomic(sweep_dir / "points.csv", table.write_csv)

    combos = list(itertools.product(games, *(grid[k] for k in keys)))
    for index, (game, *values) in enumerate(combos):
        point = dict(zip(keys, values))
        label = point_label(point)
        run_dir = sweep_dir / safe_name(f"{game}-{label}")
        record: dict[str, Any] = {
            "sweep": name, "point": index, "game": game, "label": label, **{k: str(v) for k, v in point.items()},
            "alg": base.alg, "num_seeds": base.num_seeds, "run_dir": str(run_dir), "status": "running", "reason": "",
            "final_target_return": None, "final_behaviour_return": None, "seconds": None,
        }  # fmt: skip
        records.append(record)
        write_table()
        print(f"[sweep {name}] point {index + 1}/{len(combos)}: {game} {label}", file=log, flush=True)
        tick = time.perf_counter()
        try:
            config = point_config(base, name, game, point)
            record["alg"] = config.alg
            prepare(run_dir)
            record |= finished(run(config, run_dir, log=log, hooks=make_hooks(config, log)))
        except KeyboardInterrupt:
            record["status"], record["reason"] = "failed", "interrupted"
            record["seconds"] = time.perf_counter() - tick
            write_table()
            raise
        except (Exception, SystemExit) as err:  # a failing point never stops the sweep
            record["status"] = "failed"
            record["reason"] = one_line(err) if not isinstance(err, SystemExit) else f"exited with {err.code}"
            print(f"[sweep {name}] point {game} {label} failed: {record['reason']}", file=log, flush=True)
            if not isinstance(err, (ConfigError, RunDirError, SystemExit)):
                traceback.print_exc(limit=3, file=log)
        record["seconds"] = time.perf_counter() - tick
        write_table()
    return pl.DataFrame(records, infer_schema_length=None)


@dataclasses.dataclass(frozen=True)
class SweepArgs:
    """A parsed sweep command line."""

    name: str
    base: Config
    grid: dict[str, list[Any]]
    games: list[str]
    out: Path


def parse_args(args: Sequence[str]) -> SweepArgs:
    """The command line's sweep, without creating or tracking anything; bad input exits 2 with one
    ``error:`` line, --help exits 0."""
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
    except ConfigError as err:
        fail(str(err))
    games = list(ours.games) if ours.games else [base.env]
    return SweepArgs(name=ours.name, base=base, grid=grid, games=games, out=ours.out)


def main(args: list[str] | None = None) -> int:
    plan = parse_args(sys.argv[1:] if args is None else args)
    base, name = plan.base, plan.name
    try:
        if not base.track.off:
            check_repo(dataclasses.replace(base, track=dataclasses.replace(base.track, sweep=name)))
    except TrackingError as err:
        fail(str(err))
    table = sweep(name, base, plan.grid, plan.games, plan.out)
    failed = table.filter(pl.col("status") != "done")
    print(
        f"[sweep {name}] {table.height - failed.height}/{table.height} points done; "
        f"table: {plan.out / name / POINTS_FILE}",
        file=sys.stderr,
    )
    return 0 if failed.height == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
