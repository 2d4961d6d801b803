"""`assetmon checks run URL...` (templates against web services, here and now) and
`assetmon checks templates` (what a template set holds, and what it skips and why)."""

from __future__ import annotations

import asyncio
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from app import __version__
from app.checks.loader import Filters, load_templates
from app.checks.report import as_json, as_sarif, print_text
from app.checks.runner import RunOptions, run_templates
from app.cli.common import fail, out, print_json
from app.errors import InvalidInput
from app.net.urls import check_url
from app.settings import get_settings

checks_app = typer.Typer(help="Exposure checks: nuclei-format templates against web services.", no_args_is_help=True)


class OutputFormat(StrEnum):
    json = "json"
    text = "text"
    sarif = "sarif"


Templates = Annotated[
    list[Path] | None, typer.Option("--templates", "-t", help="Folder or file of templates; repeatable.")
]
NoBuiltin = Annotated[bool, typer.Option("--no-builtin", help="Leave out AssetMon's own checks.")]
Ids = Annotated[list[str] | None, typer.Option("--id", help="Only these template ids (comma-separated).")]
Tags = Annotated[list[str] | None, typer.Option("--tags", help="Only templates with one of these tags.")]
Severity = Annotated[list[str] | None, typer.Option("--severity", "-s", help="Only these severities.")]
Authors = Annotated[list[str] | None, typer.Option("--author", help="Only templates by these authors.")]
ExcludeIds = Annotated[list[str] | None, typer.Option("--exclude-id", help="Leave out these template ids.")]
ExcludeTags = Annotated[list[str] | None, typer.Option("--exclude-tags", help="Leave out templates with these tags.")]


def _load(templates, no_builtin, ids, tags, severity, authors, exclude_ids, exclude_tags):
    try:
        filters = Filters.from_lists(
            ids or (), tags or (), severity or (), authors or (), exclude_ids or (), exclude_tags or ()
        )
    except InvalidInput as exc:
        fail(str(exc))
    folders = [*get_settings().template_folders, *(templates or [])]
    missing = [str(f) for f in folders if not f.exists()]
    if missing:
        fail("; ".join(f"{f}: no such file or directory" for f in missing))
    return load_templates(folders, builtin=not no_builtin, filters=filters)


@checks_app.command("run")
def checks_run(
    urls: Annotated[list[str], typer.Argument(help="Web services: http(s)://host, port and path optional.")],
    output: Annotated[OutputFormat, typer.Option("--format", "-f", help="json, text or sarif")] = OutputFormat.text,
    templates: Templates = None,
    no_builtin: NoBuiltin = False,
    ids: Ids = None,
    tags: Tags = None,
    severity: Severity = None,
    authors: Authors = None,
    exclude_ids: ExcludeIds = None,
    exclude_tags: ExcludeTags = None,
) -> None:
    """Run templates against URLs. Exit 0: nothing found, 1: findings, 2: error."""
    targets = []
    for url in urls:
        try:
            targets.append(check_url(url))
        except InvalidInput as exc:
            fail(f"{url}: {exc}")
    loaded = _load(templates, no_builtin, ids, tags, severity, authors, exclude_ids, exclude_tags)
    if not loaded.templates:
        fail("no templates to run (check --templates and the filters)")
    options = RunOptions.from_settings(get_settings())
    report = asyncio.run(run_templates(targets, loaded.templates, options))
    if output is OutputFormat.json:
        sys.stdout.write(as_json(report, indent=2 if sys.stdout.isatty() else None) + "\n")
    elif output is OutputFormat.sarif:
        sys.stdout.write(as_sarif(report, __version__) + "\n")
    else:
        print_text(report, out)
    raise typer.Exit(1 if report.results else 0)


@checks_app.command("templates")
def checks_templates(
    stats: Annotated[bool, typer.Option("--stats", help="Counts: loaded, and skipped by reason.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    templates: Templates = None,
    no_builtin: NoBuiltin = False,
    ids: Ids = None,
    tags: Tags = None,
    severity: Severity = None,
    authors: Authors = None,
    exclude_ids: ExcludeIds = None,
    exclude_tags: ExcludeTags = None,
) -> None:
    """List the templates that would run, or (--stats) how many load and why the others do not."""
    loaded = _load(templates, no_builtin, ids, tags, severity, authors, exclude_ids, exclude_tags)
    if stats:
        summary = loaded.stats()
        if as_json:
            print_json({**summary, "skipped_files": [s.__dict__ for s in loaded.skipped]})
            return
        out.print(
            f"{summary['files']} files: {summary['loaded']} loaded, {summary['skipped']} skipped", highlight=False
        )
        for reason, count in summary["skipped_by_reason"].items():
            out.print(f"  {count:>6}  {reason}", highlight=False)
        return
    if as_json:
        print_json(
            [
                {"id": t.id, "name": t.info.name, "severity": t.info.severity, "tags": list(t.info.tags)}
                for t in loaded.templates
            ]
        )
        return
    for t in loaded.templates:
        out.print(f"{t.info.severity:<8} {t.id:<48} {', '.join(t.info.tags)}", highlight=False, markup=False)
