"""The veto-rule screen's table and decision (README.md here, "A veto that prices false vetoes"): from each game's
``veto.csv`` under ``veto-rules/`` (written by ``veto_rules.sh``), per rule its paired gain over greedy on each game
(mean ± s.e. over seeds 0-4), the screen's score (the mean over the games of that gain relative to greedy's mean
return on the game), the score's paired difference from today's rule (threshold 0.5) with its s.e. over seeds,
and whether the rule passes the protocol's two conditions.

    python experiments/decision-time/veto_rules_table.py
"""

import sys
from pathlib import Path

import polars as pl
from veto import paired_gains

HERE = Path(__file__).parent / "veto-rules"
TODAY = "veto, learned model, 0.5"
BREAKOUT_FLOOR = -1.0  # the protocol: a rule may not lose more than a point on Breakout


def main() -> int:
    files = sorted(HERE.glob("*/veto.csv"))
    if not files:
        raise SystemExit(f"error: no veto.csv under {HERE} (run veto_rules.sh first)")
    frame = pl.concat([pl.read_csv(f) for f in files])
    frame = paired_gains(frame)
    scale = frame.filter(pl.col("policy") == "greedy").group_by("game").agg(pl.col("greedy").mean().alias("greedy_mean"))
    frame = frame.join(scale, on="game").with_columns((pl.col("gain") / pl.col("greedy_mean")).alias("relative"))
    # Seed i of every game together: the score per seed index, paired with today's rule's on the same index.
    frame = frame.with_columns(pl.col("seed").rank("dense").over("game", "policy").alias("index"))
    score = frame.group_by("policy", "index").agg(pl.col("relative").mean().alias("score"))
    today = score.filter(pl.col("policy") == TODAY).select("index", pl.col("score").alias("today"))
    score = score.join(today, on="index").with_columns((pl.col("score") - pl.col("today")).alias("vs_today"))
    se = lambda c: (pl.col(c).std() / pl.col(c).len().sqrt()).alias(c + "_se")  # noqa: E731  (over seeds)
    games = sorted(frame["game"].unique())
    rows_of = lambda policy, game: frame.filter((pl.col("policy") == policy) & (pl.col("game") == game))  # noqa: E731
    rows = []
    for policy in frame["policy"].unique(maintain_order=True):
        if policy == "greedy":
            continue
        row = {"rule": policy}
        for game in games:
            g = rows_of(policy, game).select(pl.col("gain").mean(), se("gain"))
            row[game] = f"{g.item(0, 0):+.2f} ± {g.item(0, 1):.2f}"
        s = score.filter(pl.col("policy") == policy)
        s = s.select(pl.col("score").mean(), pl.col("vs_today").mean(), se("vs_today"))
        row["score"] = f"{s.item(0, 0):+.3f}"
        row["minus today's (paired)"] = f"{s.item(0, 1):+.3f} ± {s.item(0, 2):.3f}"
        breakout = rows_of(policy, "breakout").select(pl.col("gain").mean()).item()
        learned = policy != "veto, real game" and policy != TODAY
        passes = learned and s.item(0, 1) > s.item(0, 2) and (breakout is None or breakout >= BREAKOUT_FLOOR)
        row["passes"] = "yes" if passes else ("–" if not learned else "no")
        rows.append(row)
    with pl.Config(tbl_formatting="MARKDOWN", tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True,
                   tbl_rows=100, tbl_cols=20, tbl_width_chars=400, fmt_str_lengths=80):
        print(pl.DataFrame(rows))
    print("\ngreedy's mean return per game (the scale of the score):",
          ", ".join(f"{g} {v:.2f}" for g, v in scale.sort("game").rows()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
