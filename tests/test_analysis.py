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
    final_returns,
    iqm,
    load_reference,
    load_run_dirs,
    normalise_scores,
    per_game_table,
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
    assert pqn_b["behaviour"][2] == pytest.approx(3.0)  # mean of the last 10 % (2 updates, both finite)
    table = per_game_table(finals, resamples=200)
    row = table.filter((pl.col("game") == "breakout") & (pl.col("variant") == "pqn")).row(0, named=True)
    assert row["greedy_mean"] == pytest.approx(2.0)
    assert row["greedy_se"] == pytest.approx(1.0 / np.sqrt(3))
    assert 1.0 <= row["greedy_ci_low"] <= 2.0 <= row["greedy_ci_high"] <= 3.0


def test_a_run_without_summary_is_read_with_a_warning_that_its_last_update_counts_as_final(tmp_path):
    fake_run_dir(tmp_path, "pqn", "breakout", [1.0, 2.0], finished=False)
    with pytest.warns(UnfinishedRunWarning, match="pqn-breakout has no summary.json"):
        finals = final_returns(load_run_dirs([tmp_path]))
    assert finals["greedy"].to_list() == [1.0, 2.0]


def test_iqm_normalisation_and_probability_of_improvement(runs):
    assert iqm(np.array([0.0, 1.0, 2.0, 3.0, 100.0, -100.0, 1.5, 2.5])) == pytest.approx(np.mean([1.0, 1.5, 2.0, 2.5]))
    finals = final_returns(load_run_dirs([runs]))
    scores = normalise_scores(finals, "greedy")
    breakout = scores.filter(pl.col("game") == "breakout")
    assert breakout["score"].min() == 0.0 and breakout["score"].max() == 1.0
    p, low, high = probability_of_improvement(finals, "pdqn", "pqn", resamples=200)
    # breakout: pairs (pdqn > pqn) = 6 wins + 2 ties of 9 -> 7/9; asterix: (5,7) vs (5,5) -> (1/2+1/2+1+1)/4 = 3/4
    assert p == pytest.approx((7 / 9 + 3 / 4) / 2)
    assert 0.0 <= low <= p <= high <= 1.0


def test_report_cli_writes_table_and_png(runs, tmp_path):
    out = tmp_path / "report"
    assert report_main(["--runs", str(runs), "--out", str(out), "--resamples", "200", "--window", "3",
                        "--reference", str(tmp_path / "missing.parquet")]) == 0  # fmt: skip
    table = (out / "table.md").read_text()
    assert table.startswith("| game | variant | seeds | greedy return | behaviour return |")
    assert "| breakout | pdqn | 3 | 3.00 ± 0.58 [" in table and "| pdqn vs pqn | greedy |" in table
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert pl.read_parquet(out / "runs.parquet")["run_id"].n_unique() == 10


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
    point, low, high = iqm_difference(finals, "pdqn", "pqn", resamples=300)
    # scores normalised over [0, 14] per game: pdqn IQM (11..13)/14, pqn IQM (1..3)/14
    assert point == pytest.approx(10 / 14)
    assert 0 < low <= point <= high


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
