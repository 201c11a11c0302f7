"""Property: any flag values give a valid Config or one ``error:`` line with exit code 2."""

import dataclasses
import io
from contextlib import redirect_stderr, redirect_stdout

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pdqn.cli import parse
from pdqn.config import Config


def flags(cls, prefix: str = "") -> list[str]:
    names = []
    for field in dataclasses.fields(cls):
        if dataclasses.is_dataclass(field.type):
            names += flags(field.type, f"{prefix}{field.name}.")
        else:
            names.append("--" + (prefix + field.name).replace("_", "-"))
    return names


FLAGS = flags(Config) + ["--track.no-off", "--pqn.no-lr-linear-decay", "--bogus"]
FLAGS = [f for f in FLAGS if f != "--run-dir"]  # a path: any string is valid, and it is not created by parsing
VALUES = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["nan", "inf", "-inf", "1e400", "0", "-0", "1", "0.5", "True", "false", "", " ", "pqn",
                     "pdqn", "breakout", "seaquest", "none", "layer_norm", "threshold", "sample", "0x10", "1_000"]),
    st.text(max_size=8),
)
ARGS = st.lists(st.tuples(st.sampled_from(FLAGS), st.lists(VALUES, max_size=2)), max_size=4).map(
    lambda pairs: [token for flag, values in pairs for token in (flag, *values)]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ARGS)
def test_random_flags_give_a_config_or_one_clean_error(args):
    err, out = io.StringIO(), io.StringIO()
    try:
        with redirect_stderr(err), redirect_stdout(out):
            config = parse(Config, args)
    except SystemExit as exit_:
        assert exit_.code == 2, (args, exit_.code, err.getvalue())
        lines = err.getvalue().strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, err.getvalue())
        return
    assert isinstance(config, Config)
    assert config.num_updates >= 1 and config.chunk_size >= 1 and config.eval_interval >= 1
