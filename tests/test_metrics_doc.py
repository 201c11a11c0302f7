"""docs/metrics.md is the metric declarations, regenerated: it lists every declared metric and is up to date."""

import io
from contextlib import redirect_stdout
from pathlib import Path

from pdqn import metrics
from pdqn.experiments import metrics as metrics_doc
from pdqn.metrics import Metric

DOC = Path(__file__).resolve().parent.parent / "docs" / "metrics.md"


def test_every_declared_metric_is_documented_once():
    declared = {value.name for value in vars(metrics).values() if isinstance(value, Metric)}
    documented = [m.name for group in metrics_doc.GROUPS.values() for m in group]
    assert sorted(documented) == sorted(declared)


def test_docs_metrics_md_is_regenerated():
    out = io.StringIO()
    with redirect_stdout(out):
        metrics_doc.main()
    assert out.getvalue() == DOC.read_text(), "run: python -m pdqn.experiments.metrics > docs/metrics.md"
