"""Every command's --help renders (help text is rich markup: a stray "[/x]" in it is a crash)."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from app.cli import app


def _paths(command, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    if hasattr(command, "list_commands"):  # a group (typer bundles its own click: no isinstance)
        context = type(command).context_class(command)
        for name in command.list_commands(context):
            sub = command.get_command(context, name)
            if sub is not None and not sub.hidden:
                paths += _paths(sub, (*prefix, name))
    return paths


def test_every_command_has_working_help():
    runner = CliRunner()
    paths = _paths(typer.main.get_command(app))
    assert ("checks", "run") in paths and ("secrets", "scan") in paths
    broken = []
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        if result.exit_code != 0 or "Usage" not in result.output:
            broken.append((" ".join(path), repr(result.exception)))
    assert broken == []
