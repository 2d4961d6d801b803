"""Check results as JSON, SARIF 2.1.0 and text: the CLI's outputs (and the exports' shapes)."""

from __future__ import annotations

import json
from dataclasses import asdict

from rich.console import Console
from rich.markup import escape

from app.checks.runner import CheckResult, RunReport

_SARIF_LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}
_SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4, "unknown": 5}


def result_dict(result: CheckResult) -> dict:
    return {**asdict(result), "fingerprint": result.fingerprint}


def as_json(report: RunReport, indent: int | None = None) -> str:
    return json.dumps(
        {
            "results": [result_dict(r) for r in report.results],
            "requests": report.requests,
            "errors": report.errors,
            "out_of_scope": report.out_of_scope,
            "skipped_unsafe": report.skipped_unsafe,
            "seconds": round(report.seconds, 3),
        },
        indent=indent,
    )


def _message(r: CheckResult) -> str:
    return f"{r.name} at {r.url}" + (f" ({', '.join(r.extracted[:5])})" if r.extracted else "")


def as_sarif(report: RunReport, version: str) -> str:
    rules: dict[str, dict] = {}
    results = []
    for r in report.results:
        rules.setdefault(
            r.template,
            {
                "id": r.template,
                "name": r.name,
                "shortDescription": {"text": r.name},
                "fullDescription": {"text": r.description or r.name},
                "help": {"text": r.remediation or r.description or r.name},
                "helpUri": r.references[0] if r.references else None,
                "properties": {"tags": list(r.tags), "severity": r.severity},
            },
        )
        results.append(
            {
                "ruleId": r.template,
                "level": _SARIF_LEVEL.get(r.severity, "none"),
                "message": {
                    "text": f"{r.name} at {r.url}" + (f" ({', '.join(r.extracted[:5])})" if r.extracted else "")
                },
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": r.url}}}],
                "partialFingerprints": {"assetmonCheck/v1": r.fingerprint},
            }
        )
    for rule in rules.values():
        if rule["helpUri"] is None:
            del rule["helpUri"]
    sarif = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "AssetMon checks",
                        "version": version,
                        "informationUri": "https://github.com/assetmon/assetmon",
                        "rules": list(rules.values()),
                    }
                },
                "results": results,
            }
        ],
    }
    return json.dumps(sarif, indent=2)


def print_text(report: RunReport, console: Console) -> None:
    """One line per finding, most severe first; what the target sent is escaped (it is hostile)."""
    for r in sorted(report.results, key=lambda r: (_SEVERITY_ORDER.get(r.severity, 9), r.url, r.template)):
        extra = f" [dim]{escape(', '.join(r.extracted[:5]))}[/]" if r.extracted else ""
        matched = f" [dim]({escape(', '.join(r.matchers))})[/]" if r.matchers else ""
        console.print(f"[bold]{r.severity:<8}[/] {escape(r.template)}{matched} {escape(r.url)}{extra}", highlight=False)
    skipped = f", {len(report.skipped_unsafe)} templates not run (they send bodies)" if report.skipped_unsafe else ""
    console.print(
        f"{len(report.results)} findings; {report.requests} requests, {report.errors} failed, "
        f"{report.out_of_scope} out of scope not sent{skipped}; {report.seconds:.1f} s",
        highlight=False,
    )
