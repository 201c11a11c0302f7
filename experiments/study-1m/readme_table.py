"""Copy report-candidate/table.md (all four variants, five games) into docs/study-1m.md between the study-table markers.

Run from the repository root after analysis.report: python experiments/study-1m/readme_table.py
"""

from pathlib import Path

from analysis.table import replace_marked

table = Path("experiments/study-1m/report-candidate/table.md").read_text().strip()
replace_marked(Path("docs/study-1m.md"), "study-table", table)
