"""Analysis on synthetic run dirs: final returns, CIs, IQM, probability of improvement, table, plot, CLI errors."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import cli_env

from analysis import (
    AnalysisError,
    final_returns,
    iqm,
    iqm_over_steps,
    load_anchors,
    load_reference,
    load_run_dirs,
    normalise_scores,
    per_game_table,
    performance_profile,
    probability_of_improvement,
)
from analysis.load import UnfinishedRunWarning
from analysis.report import main as report_main


def fake_run_dir(
    root: Path, alg: str, game: str, finals: list[float], updates: int = 20, finished: bool = True
) -> Path:
    run_dir = root / f"{alg}-{game}"
    run_dir.mkdir(parents=True)
    frames = []
    for seed, final in enumerate(finals):
        update = np.arange(1, updates + 1)
        behaviour = np.linspace(0, final, updates)
        behaviour[::3] = np.nan  # updates where no episode ended
        target = np.full(updates, np.nan)
        target[updates // 2 - 1] = final / 2
        target[-1] = final
        frames.append(
            pl.DataFrame(
                {"seed": seed, "update": update, "env_step": update * 64, "behaviour_return": behaviour,
                 "target_return": target, "td_loss": np.ones(updates)}
            )
        )  # fmt: skip
    pl.concat(frames).write_parquet(run_dir / "metrics.parquet")
    config = {"alg": alg, "env": game, "track": {"sweep": "", "experiment": ""}}
    (run_dir / "config.json").write_text(json.dumps(config))
    if finished:
        (run_dir / "summary.json").write_text(json.dumps({"config": config}))
    return run_dir


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "runs"
    fake_run_dir(root, "pqn", "breakout", [1.0, 2.0, 3.0])
    fake_run_dir(root, "pdqn", "breakout", [2.0, 3.0, 4.0])
    fake_run_dir(root, "pqn", "asterix", [5.0, 5.0])
    fake_run_dir(root, "pdqn", "asterix", [5.0, 7.0])
    return root


def test_final_returns_and_per_game_table(runs):
    frame = load_run_dirs([runs])
    assert {"game", "alg", "variant", "seed", "run_id", "sweep", "env_step", "behaviour_return"} <= set(frame.columns)
    finals = final_returns(frame)
    assert finals.height == 10
    pqn_b = finals.filter((pl.col("game") == "breakout") & (pl.col("variant") == "pqn")).sort("seed")
    assert pqn_b["greedy"].to_list() == [1.0, 2.0, 3.0]
    assert pqn_b["greedy_last3"].to_list() == [0.75, 1.5, 2.25]  # two evaluations: half the final, then the final
    assert pqn_b["behaviour"][2] == pytest.approx(3.0)  # mean of the last 10 % (2 updates, both finite)
    table = per_game_table(finals, resamples=200)
    row = table.filter((pl.col("game") == "breakout") & (pl.col("variant") == "pqn")).row(0, named=True)
    assert row["greedy_mean"] == pytest.approx(2.0)
    assert row["greedy_se"] == pytest.approx(1.0 / np.sqrt(3))
    assert 1.0 <= row["greedy_ci_low"] <= 2.0 <= row["greedy_ci_high"] <= 3.0


def test_the_recent_greedy_measure_is_the_mean_of_the_last_three_evaluations():
    evaluations = [np.nan, 1.0, np.nan, 2.0, 4.0, np.nan, 6.0, np.nan]  # NaN: no evaluation at that update
    frame = pl.DataFrame({
        "game": "breakout", "alg": "pqn", "variant": "pqn", "seed": 0, "run_id": "r", "sweep": "",
        "env_step": np.arange(1, 9) * 64, "target_return": evaluations, "behaviour_return": np.ones(8),
    })  # fmt: skip
    finals = final_returns(frame)
    assert finals["greedy"].to_list() == [6.0]
    assert finals["greedy_last3"].to_list() == [pytest.approx((2.0 + 4.0 + 6.0) / 3)]


def test_a_run_without_summary_is_read_with_a_warning_that_its_last_update_counts_as_final(tmp_path):
    fake_run_dir(tmp_path, "pqn", "breakout", [1.0, 2.0], finished=False)
    with pytest.warns(UnfinishedRunWarning, match="pqn-breakout has no summary.json"):
        finals = final_returns(load_run_dirs([tmp_path]))
    assert finals["greedy"].to_list() == [1.0, 2.0]


def test_iqm_and_probability_of_improvement(runs):
    assert iqm(np.array([0.0, 1.0, 2.0, 3.0, 100.0, -100.0, 1.5, 2.5])) == pytest.approx(np.mean([1.0, 1.5, 2.0, 2.5]))
    finals = final_returns(load_run_dirs([runs]))
    p, low, high = probability_of_improvement(finals, "pdqn", "pqn", resamples=200)
    # breakout: pairs (pdqn > pqn) = 6 wins + 2 ties of 9 -> 7/9; asterix: (5,7) vs (5,5) -> (1/2+1/2+1+1)/4 = 3/4
    assert p == pytest.approx((7 / 9 + 3 / 4) / 2)
    assert 0.0 <= low <= p <= high <= 1.0


def test_report_cli_writes_table_and_png(runs, tmp_path):
    out = tmp_path / "report"
    assert report_main(["--runs", str(runs), "--out", str(out), "--resamples", "200", "--window", "3",
                        "--reference", str(tmp_path / "missing.parquet")]) == 0  # fmt: skip
    table = (out / "table.md").read_text()
    assert table.startswith("| game | variant | seeds | greedy return | greedy_last3 return | behaviour return |")
    assert "| breakout | pdqn | 3 | 3.00 ± 0.58 [" in table and "| pdqn vs pqn | greedy |" in table
    for name in ("curves.png", "profiles.png", "intervals.png", "iqm_curve.png"):
        png = (out / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000, name
    assert pl.read_parquet(out / "runs.parquet")["run_id"].n_unique() == 10
    assert "0 = a uniformly random policy, 1 = PQN, this project, 1M env steps" in table
    aggregates = json.loads((out / "aggregate.json").read_text())
    assert set(aggregates["intervals"]["pdqn"]["greedy"]) == {"IQM", "median", "mean", "optimality gap"}
    # the curve has the two greedy evaluations of the fake runs (updates 10 and 20 of 64 env steps)
    assert pl.read_parquet(out / "iqm_curve.parquet").filter(pl.col("variant") == "pqn")["env_step"].to_list() == [640, 1280]


def test_reference_curves_are_optional(tmp_path):
    assert load_reference(tmp_path / "missing.parquet") is None
    ref = Path(__file__).resolve().parents[2] / "shared" / "reference" / "prototype-minatar-curves.parquet"
    if not ref.exists():
        pytest.skip(f"no reference file at {ref}")
    frame = load_reference(ref, max_env_step=200_000)
    assert set(frame["variant"].to_list()) == {"prototype pqn", "prototype pdqn"}
    assert "breakout" in frame["game"].to_list() and frame["env_step"].max() <= 200_000


@pytest.mark.parametrize(
    "args, message",
    [
        (["--aim-repo", "/nonexistent/aim"], "error: Aim repository /nonexistent/aim does not exist"),
        (["--runs", "RUNS_MISSING_METRIC"], "error: metric target_return has no value in"),
        ([], "error: give --aim-repo PATH and/or --runs DIR"),
    ],
)
def test_report_bad_input_is_one_line_exit_2(args, message, tmp_path, capsys):
    if args == ["--runs", "RUNS_MISSING_METRIC"]:
        run_dir = fake_run_dir(tmp_path / "r", "pqn", "breakout", [1.0])
        rows = pl.read_parquet(run_dir / "metrics.parquet").with_columns(target_return=pl.lit(float("nan")))
        rows.write_parquet(run_dir / "metrics.parquet")
        args = ["--runs", str(run_dir)]
    with pytest.raises(SystemExit) as exit_:
        report_main([*args, "--out", str(tmp_path / "out")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(message)


def test_report_module_runs_as_a_command(runs, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "analysis.report", "--runs", str(runs), "--out", str(tmp_path / "o"), "--resamples", "50"],
        capture_output=True, text=True, env=cli_env(), timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "| asterix | pdqn | 2 |" in proc.stdout


def test_compute_matched_pqn_is_its_own_variant():
    from analysis.load import variant_of

    assert variant_of("pqn", "", "", extra_minibatches=20) == "pqn-matched"
    assert variant_of("pqn", "", "") == "pqn"
    assert variant_of("pdqn", "", "", extra_minibatches=20) == "pdqn"
    assert variant_of("pqn", "grid", "grid:pqn.lr=0.001", extra_minibatches=5) == "pqn-matched pqn.lr=0.001"


def test_iqm_difference_has_a_ci_that_excludes_zero_for_a_clear_gap():
    import polars as pl

    from analysis.stats import iqm_difference

    rows = []
    for game in ("a", "b"):
        for seed in range(5):
            rows.append({"game": game, "variant": "pdqn", "seed": seed, "greedy": 10.0 + seed})
            rows.append({"game": game, "variant": "pqn", "seed": seed, "greedy": 0.0 + seed})
    finals = pl.DataFrame(rows)
    anchors = pl.DataFrame({"game": ["a", "b"], "random": [0.0, 0.0], "reference": [20.0, 20.0]})
    point, low, high = iqm_difference(finals, "pdqn", "pqn", resamples=300, anchors=anchors)
    # scores = returns / 20 on both games: pdqn IQM (11..13)/20, pqn IQM (1..3)/20
    assert point == pytest.approx(10 / 20)
    assert 0 < low <= point <= high


def test_iqm_difference_compares_only_the_games_both_variants_have():
    import polars as pl

    from analysis.stats import iqm_difference

    rows = [{"game": "a", "variant": v, "seed": seed, "greedy": base + seed} for v, base in (("pdqn", 4.0), ("pqn", 0.0)) for seed in range(5)]
    rows += [{"game": "b", "variant": "pdqn", "seed": seed, "greedy": 100.0} for seed in range(5)]  # pqn never ran b
    anchors = pl.DataFrame({"game": ["a", "b"], "random": [0.0, 0.0], "reference": [20.0, 20.0]})
    point, _, _ = iqm_difference(pl.DataFrame(rows), "pdqn", "pqn", resamples=100, anchors=anchors)
    assert point == pytest.approx(4 / 20)  # game a alone: (5..7)/20 - (1..3)/20, game b left out


def test_an_explicit_experiment_label_names_the_variant():
    from analysis.load import variant_of

    assert variant_of("pdqn", "", "pdqn-model-full", label="pdqn-model-full") == "pdqn-model-full"


def test_variants_filter_keeps_only_the_named_variants(runs, tmp_path):
    fake_run_dir(runs / "x", "pdqn", "breakout", [100.0, 100.0]).rename(runs / "pdqn-ablation")
    config = json.loads((runs / "pdqn-ablation" / "config.json").read_text())
    config["track"]["experiment"] = "pdqn-ablation"
    (runs / "pdqn-ablation" / "config.json").write_text(json.dumps(config))
    out = tmp_path / "kept"
    assert report_main(["--runs", str(runs), "--out", str(out), "--resamples", "50", "--variants", "pdqn,pqn"]) == 0
    kept = pl.read_parquet(out / "final.parquet")
    assert set(kept["variant"].to_list()) == {"pdqn", "pqn"}
    assert "pdqn-ablation" not in (out / "table.md").read_text()
    with pytest.raises(SystemExit) as exit_:
        report_main(["--runs", str(runs), "--out", str(out), "--variants", "pdqn,nope"])
    assert exit_.value.code == 2


def test_model_quality_averages_the_late_updates_and_sets_pqn_q_beside_pdqn(runs, tmp_path):
    from analysis.model_quality import main as quality_main

    for run_dir in (runs / "pdqn-breakout", runs / "pqn-breakout"):
        rows = pl.read_parquet(run_dir / "metrics.parquet")
        # changed-cell accuracy 0.5 early, then 0.9 in the last 10 % (updates 19-20 of 20); Q 2.0 (PDQN) / 1.0 (PQN)
        rows = rows.with_columns(
            model_changed_cell_accuracy=pl.when(pl.col("update") > 18).then(0.9).otherwise(0.5),
            mean_q=pl.lit(2.0 if "pdqn" in run_dir.name else 1.0),
        )
        rows.write_parquet(run_dir / "metrics.parquet")
    out = tmp_path / "quality.md"
    assert quality_main(["--runs", str(runs), "--out", str(out)]) == 0
    row = [line for line in out.read_text().splitlines() if line.startswith("| breakout | pdqn |")][0]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2] == "3" and cells[3] == "0.900 ± 0.000" and cells[4] == "2.000 ± 0.000" and cells[-1] == "1.000"
    with pytest.raises(SystemExit) as exit_:
        quality_main(["--runs", str(runs / "pqn-breakout"), "--out", str(out)])
    assert exit_.value.code == 2


def test_gate_table_scores_each_gate_by_what_it_trusts_and_how_often_that_is_exact():
    from analysis.gate_quality import Gate, gate_table

    steps = {  # four real steps: the model is exact on the first two
        "wrong_cells": np.array([0, 0, 3, 1]),
        "disagreeing_cells": np.array([0, 2, 0, 5]),
        "uncertain_cells_0.2": np.array([0, 1, 4, 2]),
    }
    gates = [Gate("none", "none"), Gate("agree", "disagree", 0), Gate("unsure <= 1", "uncertain", 1, 0.2)]
    table = gate_table(steps, gates).rows_by_key("gate", named=True, unique=True)
    assert table["none"] == {"trusted": 1.0, "exact (trusted)": 0.5, "exact (untrusted)": None, "wrong cells (trusted)": 1.0}
    assert table["agree"] == {"trusted": 0.5, "exact (trusted)": 0.5, "exact (untrusted)": 0.5, "wrong cells (trusted)": 1.5}
    assert table["unsure <= 1"] == {"trusted": 0.5, "exact (trusted)": 1.0, "exact (untrusted)": 0.0, "wrong cells (trusted)": 0.0}


def test_threshold_table_counts_cells_on_and_wrong_and_the_value_gap_per_threshold():
    from analysis.gate_quality import threshold_table

    steps = {  # two real steps with 3 and 5 cells on; a low threshold switches more cells on
        "real_on_cells": np.array([3, 5]),
        "on_cells_0.3": np.array([4, 5]), "wrong_cells_0.3": np.array([1, 2]), "q_gap_0.3": np.array([0.5, -0.25]),
        "on_cells_0.5": np.array([2, 3]), "wrong_cells_0.5": np.array([1, 3]), "q_gap_0.5": np.array([-1.0, 0.0]),
    }  # fmt: skip
    table = threshold_table(steps, (0.3, 0.5)).rows_by_key("on threshold", named=True, unique=True)
    q_gap = "max Q: predicted - real next frame"
    assert table[0.3] == {"cells on (real)": 4.0, "cells on (predicted)": 4.5, "wrong cells": 1.5, q_gap: 0.125}
    assert table[0.5] == {"cells on (real)": 4.0, "cells on (predicted)": 2.5, "wrong cells": 2.0, q_gap: -0.5}


def test_gate_quality_without_a_policy_is_one_line_exit_2(tmp_path, capsys):
    from analysis.gate_quality import main as gate_quality_main

    with pytest.raises(SystemExit) as exit_:
        gate_quality_main(["--runs", str(tmp_path / "no-run"), "--out", str(tmp_path / "gates.md")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {tmp_path / 'no-run'}: ")
    assert not (tmp_path / "gates.md").exists()


def test_committed_anchors_cover_every_game_and_say_where_they_come_from():
    from analysis.anchors import RANDOM_FILE, REFERENCE_FILE
    from pdqn.config import GAMES

    anchors = load_anchors()
    assert sorted(anchors["game"].to_list()) == sorted(GAMES)
    assert (anchors["random"] < anchors["reference"]).all()
    random = pl.read_csv(RANDOM_FILE)
    assert set(random["episodes"].to_list()) == {1000} and set(random["gymnax_version"].to_list()) == {"1.0.1"}
    assert random["command"].str.starts_with("python -m analysis.random_policy --episodes 1000").all()
    reference = pl.read_csv(REFERENCE_FILE)
    assert {"source", "budget", "protocol", "command"} <= set(reference.columns)
    assert reference["source"].n_unique() == 1  # one named reference for every game


def test_scores_are_normalised_by_the_fixed_anchors_whatever_else_is_compared(runs):
    finals = final_returns(load_run_dirs([runs]))
    anchors = load_anchors().rows_by_key("game", named=True, unique=True)
    breakout = anchors["breakout"]
    scores = normalise_scores(finals, "greedy").filter((pl.col("game") == "breakout") & (pl.col("variant") == "pqn"))
    expected = [(x - breakout["random"]) / (breakout["reference"] - breakout["random"]) for x in (1.0, 2.0, 3.0)]
    assert scores.sort("seed")["score"].to_list() == pytest.approx(expected)
    # a far better variant joining the comparison leaves every other run's score unchanged
    extra = finals.filter(pl.col("variant") == "pqn").with_columns(variant=pl.lit("big"), greedy=pl.col("greedy") * 100)
    both = normalise_scores(pl.concat([finals, extra]), "greedy")
    assert both.filter(pl.col("variant") != "big").sort("run_id")["score"].to_list() == pytest.approx(
        normalise_scores(finals, "greedy").sort("run_id")["score"].to_list()
    )


def test_a_game_without_anchors_is_one_error_line_exit_2(tmp_path, capsys):
    finals = pl.DataFrame({"game": ["pong"], "variant": ["pqn"], "greedy": [1.0]})
    with pytest.raises(AnalysisError, match="no score anchors for game\\(s\\) pong: anchors exist for asterix, breakout"):
        normalise_scores(finals)
    fake_run_dir(tmp_path / "r", "pqn", "pong", [1.0, 2.0])
    with pytest.raises(SystemExit) as exit_:
        report_main(["--runs", str(tmp_path / "r"), "--out", str(tmp_path / "out"), "--resamples", "20"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no score anchors for game(s) pong")


def test_performance_profile_is_the_fraction_of_pooled_runs_above_tau():
    per_game = [np.array([0.0, 0.5, 1.0, 2.0]), np.array([0.2, 0.8])]
    point, low, high = performance_profile(per_game, np.array([-1.0, 0.1, 0.6, 1.0, 5.0]), resamples=500)
    # above -1: all 6; above 0.1: 0.5 1.0 2.0 0.2 0.8; above 0.6: 1.0 2.0 0.8; above 1.0 (strictly): 2.0; above 5: none
    assert point.tolist() == pytest.approx([6 / 6, 5 / 6, 3 / 6, 1 / 6, 0.0])
    assert (low <= point + 1e-12).all() and (point <= high + 1e-12).all()
    assert low[0] == high[0] == 1.0 and low[-1] == high[-1] == 0.0  # no resample can change a certain answer
    assert low[2] < 0.5 < high[2]


def test_iqm_over_steps_pools_the_normalised_greedy_returns_evaluated_at_each_step():
    anchors = pl.DataFrame({"game": ["a", "b"], "random": [0.0, 10.0], "reference": [10.0, 30.0]})
    nan = float("nan")
    rows = [  # two runs per game; game b is not evaluated at step 200, so step 200 is left out
        ("a", "r1", 100, 1.0), ("a", "r2", 100, 3.0), ("b", "r3", 100, 12.0), ("b", "r4", 100, 30.0),
        ("a", "r1", 200, 5.0), ("a", "r2", 200, 5.0), ("b", "r3", 200, nan), ("b", "r4", 200, nan),
        ("a", "r1", 300, 10.0), ("a", "r2", 300, 10.0), ("b", "r3", 300, 30.0), ("b", "r4", 300, 50.0),
    ]  # fmt: skip
    frame = pl.DataFrame(rows, schema=["game", "run_id", "env_step", "target_return"], orient="row").with_columns(
        variant=pl.lit("pqn")
    )
    curve = iqm_over_steps(frame, resamples=300, anchors=anchors)
    assert curve["env_step"].to_list() == [100, 300]
    # step 100: scores 0.1, 0.3 (a) and 0.1, 1.0 (b); the IQM of 4 drops one from each end: (0.1 + 0.3) / 2
    # step 300: 1.0, 1.0, 1.0, 2.0 -> (1.0 + 1.0) / 2
    assert curve["iqm"].to_list() == pytest.approx([0.2, 1.0])
    assert curve["runs"].to_list() == [4, 4]
    assert (curve["ci_low"] <= curve["iqm"]).all() and (curve["iqm"] <= curve["ci_high"]).all()


def test_aggregates_equal_rliable_on_the_same_score_matrix():
    """Our IQM, median, mean, optimality gap, performance profile and probability of improvement equal
    rliable's on one (runs x games) matrix, and our stratified-bootstrap CI of the IQM equals rliable's
    up to Monte-Carlo noise."""
    pytest.importorskip("rliable", reason="rliable is a test extra: pip install -e '.[test]'")
    from rliable import library, metrics

    from analysis.stats import interval_estimate

    rng = np.random.default_rng(1)
    games = ["asterix", "breakout", "freeway", "seaquest", "space_invaders"]
    scales = np.array([2.0, 5.0, 10.0, 15.0, 25.0])  # games far apart, as normalised scores are: strata matter
    x = rng.gamma(8.0, 0.02, (10, 5)) * scales
    y = np.round(rng.gamma(8.0, 0.02, (7, 5)) * scales * 2) / 2  # fewer runs, rounded to make ties
    x[:3, 0] = y[:3, 0]  # some ties across the two algorithms too
    finals = pl.DataFrame([
        {"game": g, "variant": name, "seed": run, "greedy": float(m[run, j])}
        for name, m in (("x", x), ("y", y)) for run in range(m.shape[0]) for j, g in enumerate(games)
    ])  # fmt: skip
    identity = pl.DataFrame({"game": games, "random": [0.0] * 5, "reference": [1.0] * 5})
    scores = normalise_scores(finals, "greedy", identity)
    per_game = [scores.filter((pl.col("variant") == "x") & (pl.col("game") == g)).sort("seed")["score"].to_numpy() for g in games]
    ours = {name: interval_estimate(per_game, name, resamples=10)[0] for name in ("IQM", "median", "mean", "optimality gap")}
    assert ours["IQM"] == pytest.approx(metrics.aggregate_iqm(x), rel=1e-12)
    assert ours["median"] == pytest.approx(metrics.aggregate_median(x), rel=1e-12)
    assert ours["mean"] == pytest.approx(metrics.aggregate_mean(x), rel=1e-12)
    assert ours["optimality gap"] == pytest.approx(metrics.aggregate_optimality_gap(x), rel=1e-12)
    taus = np.linspace(0.0, 3.0, 31)
    profile, _ = library.create_performance_profile({"x": x}, taus, reps=10)
    assert performance_profile(per_game, taus, resamples=10)[0] == pytest.approx(profile["x"], abs=1e-12)
    p = probability_of_improvement(finals, "x", "y", resamples=10)
    assert p is not None and p[0] == pytest.approx(metrics.probability_of_improvement(x, y), rel=1e-12)

    # CIs: both are 95 % percentile intervals of the same stratified bootstrap (runs resampled with
    # replacement within each game), so they differ only by Monte-Carlo noise in the 2.5 % and 97.5 %
    # quantiles. With B resamples a quantile's standard error is about sqrt(0.025 * 0.975 / B) / phi(1.96)
    # = 2.67 / sqrt(B) bootstrap standard deviations; sigma is read off our interval (width / 3.92).
    # rliable (arch, one Python call per resample) gets B = 20,000 to stay within a few seconds; ours
    # B = 200,000. We allow 5 standard errors of the difference; resampling the pooled runs without
    # strata moves the endpoints by about 2 sigma on this matrix (checked below), far beyond that.
    our_b, their_b = 200_000, 20_000
    point, low, high = interval_estimate(per_game, "IQM", resamples=our_b, seed=0)
    np.random.seed(0)  # rliable draws its resamples from numpy's global generator
    _, their = library.get_interval_estimates({"x": x}, lambda s: np.array([metrics.aggregate_iqm(s)]), reps=their_b)
    sigma = (high - low) / 3.92
    tolerance = 5 * 2.67 * sigma * np.sqrt(1 / our_b + 1 / their_b)
    assert abs(low - their["x"][0, 0]) < tolerance and abs(high - their["x"][1, 0]) < tolerance
    assert tolerance < 0.1 * sigma  # tight: a tenth of the bootstrap spread
    pooled = x.ravel()[np.random.default_rng(0).integers(0, x.size, (20_000, x.size))]
    unstratified_low = np.percentile(np.sort(pooled, axis=1)[:, 12:38].mean(axis=1), 2.5)
    assert abs(unstratified_low - their["x"][0, 0]) > 10 * tolerance  # the check can tell the schemes apart


def test_random_policy_plays_one_whole_episode_per_environment_and_rejects_unknown_games(tmp_path, capsys):
    from analysis.random_policy import main as random_main
    from analysis.random_policy import measure

    table = measure(["breakout"], 16, 0, "python -m analysis.random_policy ...")
    row = table.row(0, named=True)
    assert row["episodes"] == 16 and row["gymnax_version"] == "1.0.1"
    assert (row["mean_return"] * 16) == pytest.approx(round(row["mean_return"] * 16))  # a sum of whole-brick rewards
    assert 0.0 < row["mean_return"] < 3.0  # random Breakout breaks a brick or two at most (anchor: 0.42)
    with pytest.raises(SystemExit) as exit_:
        random_main(["--games", "breakout,pong", "--out", str(tmp_path / "r.csv")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --games: unknown game(s) pong")
    assert not (tmp_path / "r.csv").exists()


def test_replace_marked_rewrites_only_between_its_markers_and_refuses_a_document_without_them(tmp_path):
    from analysis.table import replace_marked

    doc = tmp_path / "doc.md"
    doc.write_text("intro\n<!-- results -->\nold\n<!-- /results -->\noutro\n")
    replace_marked(doc, "results", "new $1 \\1")  # replacement text is taken literally
    assert doc.read_text() == "intro\n<!-- results -->\nnew $1 \\1\n<!-- /results -->\noutro\n"
    with pytest.raises(ValueError, match="no <!-- other -->"):
        replace_marked(doc, "other", "x")
