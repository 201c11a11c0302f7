"""The fresh-seed study's tables in README.md here, from the committed runs (``study/runs/``): ``analysis.report``'s
table (per game and variant both measures, the IQM of each, and P(improvement) and the IQM difference of ``pqn-veto``
over every control) between the ``study-table`` markers; the same comparisons for today's default, ``pdqn``, against the
controls between ``study-default`` (a second report, ``study/report-default/``); and each run's training time between
``study-seconds``.

    python experiments/decision-time/study_table.py

Runs that have not finished yet are left out (``study.sh`` copies a run only when it ends), so the tables can be
made while the study runs; the README says how many runs they hold.
"""

import json
import sys
from pathlib import Path

from analysis.report import main as report_main
from analysis.table import comparison_table, replace_marked
from runs_table import row

HERE = Path(__file__).parent
RUNS = HERE / "study" / "runs"
CANDIDATE = "pqn-veto"
CONTROLS = ["pqn-wallclock", "pqn", "pqn-matched", "pqn-reuse", "pdqn"]
DEFAULT = "pdqn"
"""Today's default, which stays unless the candidate passes the decision: README says which control beats it."""


def main() -> int:
    runs = sorted(d for d in RUNS.glob("*") if (d / "summary.json").is_file())
    if not runs:
        print(f"error: no finished runs in {RUNS}", file=sys.stderr)
        return 2
    out = HERE / "study" / "report"
    code = report_main(["--runs", str(RUNS), "--out", str(out), "--better", CANDIDATE, "--worse", ",".join(CONTROLS)])
    if code != 0:
        return code
    readme = HERE / "README.md"
    replace_marked(readme, "study-table", f"{len(runs)} runs of five seeds each.\n\n" + (out / "table.md").read_text().strip())
    out_default = HERE / "study" / "report-default"
    others = [c for c in [CANDIDATE, *CONTROLS] if c != DEFAULT]
    code = report_main(["--runs", str(RUNS), "--out", str(out_default), "--better", DEFAULT, "--worse", ",".join(others)])
    if code != 0:
        return code
    aggregates = json.loads((out_default / "aggregate.json").read_text())
    replace_marked(readme, "study-default", comparison_table(aggregates["comparisons"]))
    rows = [row(d, None) for d in runs]
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])] + ["| " + " | ".join(r.values()) + " |" for r in rows]
    replace_marked(readme, "study-seconds", "\n".join(lines))
    print(f"{len(runs)} runs: tables written to {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
