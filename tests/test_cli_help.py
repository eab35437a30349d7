"""Every ``alband`` command's ``--help`` works and documents every option."""

from __future__ import annotations

import re

import pytest

from alband.cli.main import main

COMMANDS = [
    [], ["demo"], ["run"], ["resume"], ["report"], ["policies"], ["routers"], ["learners"], ["simulate"],
    ["route"], ["route", "replay"], ["bench"], ["bench", "design"], ["bench", "acquisition"], ["bench", "embed"],
    ["bench", "learners"], ["bench", "preference"], ["bench", "simulate"],
    ["sweep"], ["sweep", "report"], ["sweep", "bench"],
]


def _help(capsys, command: list[str]) -> str:
    try:
        code = main([*command, "--help"])
    except SystemExit as exit_:
        code = exit_.code
    assert code == 0, f"alband {' '.join(command)} --help exited {code}"
    return capsys.readouterr().out


def _undocumented(text: str) -> list[str]:
    """Options of the help's "options:" section with no description (on their line or the next)."""
    lines = text.splitlines()
    missing = []
    in_options = False
    for k, line in enumerate(lines):
        if re.match(r"^(options|optional arguments):", line):
            in_options = True
            continue
        if in_options and line and not line.startswith(" "):
            in_options = False
        if in_options and re.match(r"^  -", line):
            described = re.search(r"\S\s{2,}\S", line.strip()) is not None
            follows = k + 1 < len(lines) and re.match(r"^\s{8,}\S", lines[k + 1]) is not None
            if not (described or follows):
                missing.append(line.strip())
    return missing


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "alband")
def test_help_works_and_documents_every_option(capsys, command):
    text = _help(capsys, command)
    assert "usage:" in text
    assert _undocumented(text) == []


def test_the_top_level_help_lists_every_command(capsys):
    text = _help(capsys, [])
    for name in ("demo", "run", "resume", "report", "policies", "routers", "learners", "simulate", "route", "bench", "sweep"):
        assert re.search(rf"^\s+{name}\s", text, re.M), name


def test_a_command_with_actions_and_no_action_is_one_line_exit_2(capsys):
    assert main(["bench"]) == 2
    assert capsys.readouterr().err.strip() == (
        "alband: error: alband bench: name an action (acquisition, design, embed, learners, preference, simulate); "
        "see alband bench --help")
