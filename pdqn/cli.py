"""Parsing configs from the command line with one-line errors instead of tracebacks."""

import io
import re
import sys
from collections.abc import Sequence
from contextlib import redirect_stderr
from typing import NoReturn, TypeVar

import tyro

from pdqn.config import ConfigError

T = TypeVar("T")
USAGE_ERROR = 2


def fail(message: str) -> NoReturn:
    """Print ``error: message`` on one line and exit with status 2."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(USAGE_ERROR)


def parse(cls: type[T], args: Sequence[str] | None = None, description: str | None = None) -> T:
    """``tyro.cli(cls)``; a bad flag or value exits 2 with a single ``error:`` line."""
    captured = io.StringIO()
    try:
        with redirect_stderr(captured):
            return tyro.cli(cls, args=args, description=description)
    except SystemExit as exit_:
        if exit_.code in (0, None):
            sys.stderr.write(captured.getvalue())
            raise
        fail(summarise_tyro_error(captured.getvalue()))
    except ConfigError as err:
        fail(str(err))


def summarise_tyro_error(text: str) -> str:
    """Squeeze tyro's boxed multi-line parse error into one line."""
    lines = [re.sub(r"[│╭╮╰╯─┃━]+", " ", line).strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.lower().startswith(("usage", "for full helptext"))]
    message = " ".join(lines)
    message = re.sub(r"\s+", " ", message).strip()
    message = re.sub(r"\s*Argument helptext:.*$", "", message)
    message = re.sub(r"^(Invalid choice|Value error|Unrecognized options|Required options)\s+", "", message)
    message = re.sub(r"^Error parsing [\w.-]+: (?=[\w.]+=)", "", message)
    return message or "invalid command line (see --help)"

