"""Scan files and directories: the one implementation behind the CLI, the job and the API."""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from dataclasses import dataclass, field
from pathlib import Path

from app.secrets.engine import Finding, Matcher, scan_chunks
from app.secrets.inputs import Limits, SkipFile, expand, read_chunks
from app.secrets.rules import CONFIDENCES, RuleSet, load_rules
from app.secrets.sourcemap import annotate
from app.settings import get_settings


@dataclass
class ScanReport:
    findings: list[Finding] = field(default_factory=list)
    files_scanned: int = 0
    bytes_scanned: int = 0
    seconds: float = 0.0
    skipped: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def confident_enough(finding: Finding, minimum: str) -> bool:
    return CONFIDENCES.index(finding.confidence) >= CONFIDENCES.index(minimum)


def make_matcher(rule_files: list[Path] | None = None, ruleset: RuleSet | None = None) -> Matcher:
    settings = get_settings()
    extra = list(rule_files or [])
    if settings.secrets_rules_file and not rule_files:
        extra.append(settings.secrets_rules_file)
    cache_dir = settings.secrets_cache_dir or settings.data_dir / "cache"
    return Matcher(ruleset or load_rules(extra, cache_dir=cache_dir), cache_dir=cache_dir)


def scan_file(matcher: Matcher, path: str | Path, limits: Limits, report: ScanReport, name: str | None = None) -> None:
    label = name or str(path)
    try:
        scan = scan_chunks(matcher, read_chunks(path, limits), label)
    except SkipFile as reason:
        report.skipped.append({"file": label, "reason": str(reason)})
        return
    findings = scan.result()
    if findings and str(path).lower().endswith(".map"):
        with contextlib.suppress(OSError):
            annotate(findings, Path(path).read_bytes())
    if scan.truncated:
        report.warnings.append(f"{label}: too many candidate matches; the file was only partly scanned")
    report.files_scanned += 1
    report.bytes_scanned += scan.bytes_scanned
    report.findings.extend(findings)


def scan_paths(
    paths: list[Path],
    *,
    matcher: Matcher | None = None,
    limits: Limits | None = None,
    min_confidence: str = "low",
    processes: int = 1,
) -> ScanReport:
    """Scan files and directories. `processes` > 1 scans big trees in forked processes (CLI only:
    a Celery worker's pool processes may not have children)."""
    started = time.perf_counter()
    matcher = matcher or make_matcher()
    limits = limits or Limits.from_settings()
    report = ScanReport()
    files: list[str | Path] = []
    for path, problem in expand(paths):
        if problem:
            report.skipped.append({"file": str(path), "reason": problem})
        else:
            files.append(path)
    if processes > 1 and len(files) >= PARALLEL_MIN_FILES:
        _scan_parallel(matcher, files, limits, report, processes)
    else:
        for path in files:
            scan_file(matcher, path, limits, report)
    report.findings = [f for f in report.findings if confident_enough(f, min_confidence)]
    report.seconds = time.perf_counter() - started
    return report


# Parallel scanning: forked children inherit the compiled matcher (a Hyperscan database cannot be
# pickled) and send back plain reports. Small batches taken as workers free up keep them evenly busy
# (a batch of files dense with findings costs many times its size); the reports are put back in file
# order, so output is deterministic.
PARALLEL_MIN_FILES = 64
_BATCH_FILES = 12
_inherited: tuple[Matcher, Limits] | None = None


def _scan_batch(job: tuple[int, list[str | Path]]) -> tuple[int, ScanReport]:
    assert _inherited is not None
    matcher, limits = _inherited
    index, batch = job
    report = ScanReport()
    for path in batch:
        scan_file(matcher, path, limits, report)
    return index, report


def _scan_parallel(
    matcher: Matcher, files: list[str | Path], limits: Limits, report: ScanReport, processes: int
) -> None:
    global _inherited
    batches = [files[i : i + _BATCH_FILES] for i in range(0, len(files), _BATCH_FILES)]
    _inherited = (matcher, limits)
    parts: list[ScanReport | None] = [None] * len(batches)
    try:
        with multiprocessing.get_context("fork").Pool(min(processes, len(batches))) as pool:
            for index, part in pool.imap_unordered(_scan_batch, enumerate(batches)):
                parts[index] = part
    finally:
        _inherited = None
    for part in parts:
        assert part is not None  # imap_unordered yields every batch or raises
        report.findings.extend(part.findings)
        report.files_scanned += part.files_scanned
        report.bytes_scanned += part.bytes_scanned
        report.skipped.extend(part.skipped)
        report.warnings.extend(part.warnings)
