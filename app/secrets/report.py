"""Findings as JSON, SARIF 2.1.0 or coloured text. Secrets are redacted unless revealed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.text import Text

from app import __version__
from app.secrets.engine import Finding
from app.secrets.rules import RuleSet
from app.secrets.scan import ScanReport
from app.secrets.snippets import readable, snippet

_SARIF_LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note"}


def finding_dict(f: Finding, reveal: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "rule": f.rule,
        "description": f.description,
        "severity": f.severity,
        "confidence": f.confidence,
        "file": f.file,
        "start": f.start,
        "end": f.end,
        "line": f.line,
        "column": f.column,
        "secret": f.secret if reveal else f.redacted(),
        "fingerprint": f.fingerprint,
        "context": snippet(f, reveal),
    }
    if f.source is not None:
        data.update(source=f.source, source_line=f.source_line, source_column=f.source_column)
    if f.verification is not None:
        data["verification"] = f.verification
    return data


def as_json(report: ScanReport, reveal: bool = False, indent: int | None = None) -> str:
    body = {
        "findings": [finding_dict(f, reveal) for f in report.findings],
        "files_scanned": report.files_scanned,
        "bytes_scanned": report.bytes_scanned,
        "seconds": round(report.seconds, 4),
        "skipped": report.skipped,
        "warnings": report.warnings,
    }
    # Compact unless a person reads it: the indenting encoder is pure Python and slow on big reports.
    return json.dumps(body, indent=indent, ensure_ascii=False)


def _uri(name: str) -> str:
    """A SARIF artifact URI: URLs as they are, file paths percent-encoded (relative stays relative)."""
    if "://" in name:
        return name
    return quote(Path(name).as_posix(), safe="/:@!$&'()*+,;=-._~")


def as_sarif(report: ScanReport, rules: RuleSet, reveal: bool = False) -> str:
    used = sorted({f.rule for f in report.findings})
    rule_index = {rule_id: i for i, rule_id in enumerate(used)}
    descriptors = []
    for rule_id in used:
        rule = rules.by_id(rule_id)
        descriptors.append(
            {
                "id": rule.id,
                "name": rule.id.replace("-", " ").title().replace(" ", ""),
                "shortDescription": {"text": rule.description},
                "defaultConfiguration": {"level": _SARIF_LEVEL[rule.severity]},
                "properties": {
                    "severity": rule.severity,
                    "confidence": rule.confidence,
                    "tags": ["security", "secret"],
                },
            }
        )
    results = []
    for f in report.findings:
        region = {
            "startLine": f.line,
            "startColumn": f.column,
            "byteOffset": f.start,
            "byteLength": f.end - f.start,
        }
        results.append(
            {
                "ruleId": f.rule,
                "ruleIndex": rule_index[f.rule],
                "level": _SARIF_LEVEL[f.severity],
                "message": {"text": f"{f.description}: {f.secret if reveal else f.redacted()}"},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": _uri(f.file)}, "region": region}}],
                "partialFingerprints": {"assetmonSecret/v1": f.fingerprint},
                "properties": {"confidence": f.confidence},
            }
        )
    sarif = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "AssetMon",
                        "version": __version__,
                        "rules": descriptors,
                    }
                },
                "columnKind": "unicodeCodePoints",
                "results": results,
            }
        ],
    }
    return json.dumps(sarif, indent=2, ensure_ascii=False)


def print_text(report: ScanReport, console: Console, reveal: bool = False) -> None:
    colours = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan"}
    for f in report.findings:
        where = f"{f.file}:{f.line}:{f.column}"
        if f.source:
            where += f"  (original: {f.source}:{f.source_line}:{f.source_column})"
        context, shown = readable(f, reveal)
        body = Text(context)
        body.highlight_words([shown], style="bold black on yellow")
        title = f"[{colours[f.severity]}]{f.severity.upper()}[/] {escape(f.rule)} · {escape(f.description)}"
        console.print(Text(where, style="bold"), soft_wrap=True)  # whole, however long the path
        subtitle = f"confidence {f.confidence} · {f.fingerprint[:12]}"
        if f.verification is not None:
            subtitle += f" · {escape(f.verification['status'])}: {escape(f.verification['detail'])}"
        console.print(Panel(body, title=title, subtitle=subtitle, title_align="left", subtitle_align="left"))
    for skipped in report.skipped:
        console.print(f"[dim]skipped {escape(skipped['file'])}: {escape(skipped['reason'])}[/]")
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}")
    mib = report.bytes_scanned / (1 << 20)
    console.print(
        f"{len(report.findings)} finding(s) in {report.files_scanned} file(s), {mib:.1f} MiB in {report.seconds:.2f} s"
        + ("" if reveal or not report.findings else " · secrets redacted (use --reveal to show them)")
    )
