"""Command groups that import a command's module only when that command runs (or help lists it), in the
way click documents for "lazily loading subcommands": `assetmon secrets scan` in a CI pipeline starts
without loading Celery, SQLAlchemy or FastAPI, which only the other commands need."""

from __future__ import annotations

import importlib
from collections.abc import Mapping

import click
import typer
from typer.core import TyperGroup


def lazy_group(commands: Mapping[str, str]) -> type[TyperGroup]:
    """A TyperGroup class whose commands are {name: "module:attribute"}, each attribute a Typer app (a
    group, or an app with one command)."""

    class LazyGroup(TyperGroup):
        def list_commands(self, ctx: click.Context) -> list[str]:
            return [*super().list_commands(ctx), *(name for name in commands if name not in self.commands)]

        def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
            if cmd_name not in commands or cmd_name in self.commands:
                return super().get_command(ctx, cmd_name)
            module, _, attribute = commands[cmd_name].partition(":")
            found: typer.Typer = getattr(importlib.import_module(module), attribute)
            # An app whose one command has this name is that command; any other app is a group.
            single = [c for c in found.registered_commands if c.name == cmd_name] == found.registered_commands
            command = typer.main.get_command(found) if single else typer.main.get_group(found)
            command.name = cmd_name
            self.commands[cmd_name] = command
            return command

    return LazyGroup
