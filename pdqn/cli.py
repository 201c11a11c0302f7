"""Parsing configs from the command line with one-line errors instead of tracebacks, and help texts that
read as flowing prose."""

import ast
import dataclasses
import functools
import inspect
import io
import re
import sys
import textwrap
import types
import typing
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, redirect_stderr
from typing import Any, NoReturn, TypeVar

import tyro

from pdqn.config import ConfigError

T = TypeVar("T")
USAGE_ERROR = 2
INTERRUPTED = 130
"""The shell's status for a command ended by SIGINT (128 + 2)."""


def fail(message: str) -> NoReturn:
    """Print ``error: message`` on one line and exit with status 2."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(USAGE_ERROR)


@contextmanager
def interruptible(command: str) -> Iterator[None]:
    """Ctrl-C inside the block ends the command with one line and status 130 instead of a traceback (for the
    commands that write nothing until they are done: evaluate, benchmark)."""
    try:
        yield
    except KeyboardInterrupt:
        print(f"{command}: stopped by SIGINT; nothing was written", file=sys.stderr)
        raise SystemExit(INTERRUPTED) from None


def parse(
    cls: type[T], args: Sequence[str] | None = None, description: str | None = None, prog: str | None = None
) -> T:
    """``tyro.cli(cls)``; a bad flag or value exits 2 with a single ``error:`` line. ``prog`` is the program
    as its usage line shows it (e.g. ``python -m pdqn.experiments.minatar``)."""
    flowing_help(cls)
    description = flowing(description) if description is not None else None
    captured = io.StringIO()
    try:
        with redirect_stderr(captured):
            return tyro.cli(cls, args=args, description=description, prog=prog)
    except SystemExit as exit_:
        if exit_.code in (0, None):
            sys.stderr.write(captured.getvalue())
            raise
        fail(summarise_tyro_error(captured.getvalue()))
    except ConfigError as err:
        fail(str(err))


def summarise_tyro_error(text: str) -> str:
    """Squeeze tyro's boxed multi-line parse error into one line."""
    lines = [re.sub(r"[│╭╮╰╯─┃━]+|-{3,}", " ", line).strip() for line in text.splitlines()]  # boxes, plain rules
    lines = [line for line in lines if line and not line.lower().startswith(("usage", "for full helptext"))]
    message = " ".join(lines)
    message = re.sub(r"\s+", " ", message).strip()
    message = re.sub(r"\s*Argument helptext:.*$", "", message)
    message = re.sub(r"^(Invalid choice|Value error|Unrecognized options|Required options)\s+", "", message)
    message = re.sub(r"^Error parsing [\w.-]+: (?=[\w.]+=)", "", message)
    return message or "invalid command line (see --help)"


# ---- help texts -------------------------------------------------------------------------


@functools.cache
def field_docstrings(cls: type) -> dict[str, str]:
    """Each field's docstring: the string literal right after the field's annotated assignment (read from the
    source once per class: every parse of a command line asks again)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):  # no source (e.g. a class made at run time)
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs = {}
    for node, after in zip(body, body[1:]):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = after.value.value
    return docs


def flowing(text: str) -> str:
    """A docstring as flowing plain text: the lines of each paragraph joined, paragraphs kept apart, reST
    markup (``literal``, :mod:`name`) shown as plain text."""
    text = re.sub(r":\w+:`([^`]+)`", r"\1", re.sub(r"``(.+?)``", r"\1", inspect.cleandoc(text)))
    paragraphs = re.split(r"\n\s*\n", text)
    return "\n\n".join(" ".join(paragraph.split()) for paragraph in paragraphs)


def nested_dataclasses(hint: Any) -> list[type]:
    """The dataclasses a field's type hint holds (through ``Annotated`` and unions)."""
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return [hint]
    return [cls for arg in typing.get_args(hint) for cls in nested_dataclasses(arg)]


def flowing_help(cls: type) -> None:
    """Give every field of ``cls`` and of the dataclasses nested in it its docstring, as flowing text, as the
    ``help`` metadata tyro shows verbatim (a field that has ``help`` keeps it).

    Why: tyro joins a docstring's lines only where a line starts with a letter and before it removes the
    indentation, so every continuation line of an indented field docstring would start a new line in --help.
    """
    if not dataclasses.is_dataclass(cls):
        return
    docs, hints = field_docstrings(cls), typing.get_type_hints(cls, include_extras=True)
    for field in dataclasses.fields(cls):
        if field.name in docs and "help" not in field.metadata:
            field.metadata = types.MappingProxyType({**field.metadata, "help": flowing(docs[field.name])})
        for nested in nested_dataclasses(hints.get(field.name)):
            flowing_help(nested)
