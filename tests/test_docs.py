"""Every ``python -m pdqn.experiments.<name> ...`` command shown in README.md and docs/*.md parses with the real
command line: its flags and values are valid. Nothing is run (each entry point's ``parse_args`` only parses)."""

import importlib
import io
import re
import shlex
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from tests.conftest import REPO

DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]  # docs/ may not exist (yet)
COMMAND = re.compile(r"(?:^|[\s/])python[\d.]*\s+-m\s+pdqn\.experiments\.(\w+)\b(.*)$")
SHELL_ENDS = {"&&", "||", ";", "|", ">", ">>", "2>", "&"}
PLACEHOLDERS = {"RUN_DIR": "{tmp}/run", "PATH": "{tmp}/episode.gif", "NAME": "example", "N": "2"}
"""Words the documents write for a value of the reader's: replaced by one of the right kind."""


def code_lines(markdown: str) -> list[tuple[int, str]]:
    """(line number, text) of the code in ``markdown``: the lines of fenced blocks and of indented blocks (four
    spaces, after a blank line), a line ending in a backslash joined with the next."""
    found, fenced, indented, previous_blank = [], False, False, True
    for number, line in enumerate(markdown.splitlines(), start=1):
        if line.lstrip().startswith("```"):
            fenced, indented = not fenced, False
            continue
        indented = not fenced and line.startswith("    ") and (indented or previous_blank)
        previous_blank = not line.strip()
        if fenced or indented:
            found.append((number, line))
    joined: list[tuple[int, str]] = []
    for number, line in found:
        if joined and joined[-1][1].endswith("\\"):
            joined[-1] = (joined[-1][0], joined[-1][1][:-1] + " " + line.strip())
        else:
            joined.append((number, line))
    return joined


def commands(markdown: str) -> list[tuple[int, str, list[str]]]:
    """(line number, entry point, arguments) of every pdqn command in the code of ``markdown``: the arguments
    up to a shell operator or comment, with "..." (flags left out) dropped and [optional] brackets removed."""
    found = []
    for number, line in code_lines(markdown):
        match = COMMAND.search(line)
        if match is None:
            continue
        args = []
        for token in shlex.split(match.group(2), comments=True):
            if token in SHELL_ENDS:
                break
            token = token.removeprefix("[").removesuffix("]")
            if token and token != "...":
                args.append(token)
        found.append((number, match.group(1), args))
    return found


def documented_commands() -> list:
    return [
        pytest.param(name, args, id=f"{path.name}:{number}")
        for path in DOCUMENTS
        for number, name, args in commands(path.read_text())
    ]


def test_commands_are_found_in_fences_and_indented_blocks_with_continuations():
    markdown = (
        "Prose that mentions `python -m pdqn.experiments.minatar --bogus` inline.\n\n"
        "```bash\n"
        "python -m pdqn.experiments.minatar --alg pdqn \\\n"
        "  --env seaquest   # a comment\n"
        "echo python is not a pdqn command\n"
        ".venv/bin/python -m pdqn.experiments.benchmark --phases && echo done\n"
        "```\n\n"
        "    python -m pdqn.experiments.evaluate RUN_DIR [--minatar] [--sticky 0.1]\n"
        "    python -m pdqn.experiments.minatar ... --track.off\n"
    )
    assert commands(markdown) == [
        (4, "minatar", ["--alg", "pdqn", "--env", "seaquest"]),
        (7, "benchmark", ["--phases"]),
        (10, "evaluate", ["RUN_DIR", "--minatar", "--sticky", "0.1"]),
        (11, "minatar", ["--track.off"]),
    ]


def test_the_readme_shows_commands_of_every_entry_point():
    shown = {name for _, name, _ in commands((REPO / "README.md").read_text())}
    assert shown >= {"minatar", "evaluate", "benchmark", "sweep"}


@pytest.mark.parametrize("name, args", documented_commands())
def test_documented_command_parses(name, args, tmp_path):
    args = [PLACEHOLDERS.get(arg, arg).format(tmp=tmp_path) for arg in args]
    entry_point = importlib.import_module(f"pdqn.experiments.{name}")
    err = io.StringIO()
    try:
        with redirect_stdout(io.StringIO()), redirect_stderr(err):
            entry_point.parse_args(args)
    except SystemExit as exit_:
        assert exit_.code in (0, None), f"python -m pdqn.experiments.{name} {shlex.join(args)}: {err.getvalue()}"
