"""Copy report-candidate/table.md (all four variants, five games) into docs/study-1m.md between the study-table markers.

Run from the repository root after analysis.report: python experiments/study-1m/readme_table.py
"""

import re
from pathlib import Path

table = Path("experiments/study-1m/report-candidate/table.md").read_text().strip()
readme = Path("docs/study-1m.md")
text = readme.read_text()
new = re.sub(
    r"<!-- study-table -->.*?<!-- /study-table -->",
    lambda _: f"<!-- study-table -->\n{table}\n<!-- /study-table -->",
    text,
    flags=re.S,
)
readme.write_text(new)
