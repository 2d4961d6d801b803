"""Secret scanning: whole-process throughput, speed-up over beautify-then-regex, peak memory, accuracy.

Builds a corpus of real npm bundles (tests/support/bundles.py: `npm pack`, cached) whose .js/.mjs
files are copied until the corpus holds --size-mb MB, with freshly generated fake credentials and
decoys planted (tests/support/planting.py) into the main bundles of every copy. Corpus, DATA_DIR and
Hyperscan DB cache all live in a temp dir that is removed at the end. Then, one step after another:

1. `assetmon secrets scan CORPUS --format json` as a whole process (Python start-up included): once
   with an empty DB cache (cold: the rules are compiled), then --runs times warm. MB/s is
   bytes_scanned / wall time; bytes_scanned must cover the whole corpus.
2. The SecretFinder approach on a --baseline-mb sample of the same bundles: jsbeautifier.beautify()
   of each whole file, then every rule's Python regex over the beautified text. Speed-up is our warm
   median MB/s over its MB/s.
3. Peak RSS of `assetmon secrets scan FILE` on one --size-mb .js file (the bundles concatenated).
4. Recall and precision of the findings from step 1 against what was planted, matched by file, byte
   offsets and rule; planted decoys must give no finding.

1b. The same whole-process scans with AssetMon as it was before the rule set grew (59 rules, commit
   PREVIOUS_RELEASE, extracted with `git archive` and run with this venv), warm runs alternated with
   ours so that both see the same machine: more rules must not cost speed. Skipped, with the reason,
   when git or that commit is not at hand (a shallow clone).

Targets: warm median >= 300 MB/s, speed-up >= 1000x, peak RSS <= 300 MB, recall and precision
>= 0.97, no finding from a decoy. MB is 2**20 bytes throughout. Exits 1 if a target is missed.

    .venv/bin/python bench/secrets_bench.py [--size-mb 200] [--runs 3] [--baseline-mb 1] [--seed N]
        [--rules-per-file 60]   # rules planted per main bundle (a sample; 0: all of them, the densest case)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.secrets.engine import Matcher
from app.secrets.rules import RuleSet, load_rules
from app.settings import PROJECT_ROOT, Settings
from tests.support.bundles import main_bundles, package_dirs
from tests.support.planting import DECOYS, plant

MB = 1 << 20
ASSETMON = PROJECT_ROOT / ".venv" / "bin" / "assetmon"
BUNDLE_SUFFIXES = (".js", ".mjs")

# The last commit with the 59-rule set (app/secrets/rules.toml), before the rules became a folder.
PREVIOUS_RELEASE = "32d602ff94fffab1fd98e8643d8f545ead371cc5"
TARGET_MBPS = 300.0
TARGET_SPEEDUP = 1000.0
TARGET_RSS_MB = 300.0
TARGET_RECALL = 0.97
TARGET_PRECISION = 0.97


@dataclass
class Corpus:
    root: Path
    files: int = 0
    bytes: int = 0
    planted_files: int = 0
    # (file, start, end) -> rule id, for every planted fake credential
    expected: dict[tuple[str, int, int], str] | None = None
    # file -> [(start, end)] of every planted decoy
    decoys: dict[str, list[tuple[int, int]]] | None = None


@dataclass
class Run:
    seconds: float
    returncode: int
    max_rss_mb: float
    report: dict


def bundle_sources() -> list[tuple[str, Path, bool]]:
    """(relative path, source, is a main bundle) for every .js/.mjs file of the npm packages; main bundles first."""
    mains = {p.resolve() for p in main_bundles()}
    sources = []
    for name, root in package_dirs().items():
        for path in sorted(root.rglob("*")):
            if path.suffix in BUNDLE_SUFFIXES and path.is_file() and not path.is_symlink():
                rel = f"{name}/{path.relative_to(root)}"
                sources.append((rel, path, path.resolve() in mains))
    sources.sort(key=lambda s: not s[2])  # stable: main bundles first, so every copy gets planted files
    return sources


def decoy_texts(ruleset: RuleSet) -> list[bytes]:
    texts = list(DECOYS) + [text for rule in ruleset.rules for text in rule.false_examples]
    return sorted({("\n" + t + "\n").encode() for t in texts})


def find_spans(data: bytes, needle: bytes) -> list[tuple[int, int]]:
    spans = []
    at = data.find(needle)
    while at >= 0:
        spans.append((at, at + len(needle)))
        at = data.find(needle, at + 1)
    return spans


def build_corpus(
    root: Path, size_bytes: int, ruleset: RuleSet, matcher: Matcher, seed: int, rules_per_file: int = 0
) -> Corpus:
    rng = random.Random(seed)
    sources = bundle_sources()
    decoy_needles = decoy_texts(ruleset)
    corpus = Corpus(root=root, expected={}, decoys={})
    copy = 0
    while corpus.bytes < size_bytes:
        for rel, source, is_main in sources:
            if corpus.bytes >= size_bytes:
                break
            target = root / f"copy{copy:02d}" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if is_main:
                # Real bundles hold a few secrets, not one of every kind: a sample of the rules per file
                # (all of them with --rules-per-file 0, the densest case).
                sample = ruleset.rules
                if 0 < rules_per_file < len(sample):
                    sample = tuple(sorted(rng.sample(sample, rules_per_file), key=lambda r: r.order))
                subset = RuleSet(sample, ruleset.digest, ruleset.public)
                data, plants = plant(source.read_bytes(), subset, matcher, rng, decoys=True)
                target.write_bytes(data)
                name = os.path.normpath(target)
                for p in plants:
                    corpus.expected[(name, p.start, p.start + len(p.value))] = p.rule
                corpus.decoys[name] = [span for needle in decoy_needles for span in find_spans(data, needle)]
                corpus.planted_files += 1
                size = len(data)
            else:
                shutil.copyfile(source, target)
                size = target.stat().st_size
            corpus.files += 1
            corpus.bytes += size
        copy += 1
    return corpus


def concatenate(corpus_root: Path, target: Path, size_bytes: int) -> int:
    """One big .js file made of the corpus files, for the peak-memory run."""
    written = 0
    with open(target, "wb") as out:
        while written < size_bytes:
            for path in sorted(corpus_root.rglob("*")):
                if written >= size_bytes:
                    break
                if path.is_file():
                    written += out.write(path.read_bytes())
                    written += out.write(b"\n;\n")
    return written


def scan_env(data_dir: Path, max_file_bytes: int) -> dict[str, str]:
    """The user's environment minus AssetMon settings; a temp DATA_DIR and the default secret-scan limits."""
    fields = Settings.model_fields
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSETMON_") and k.lower() not in fields}
    env.update(
        {
            "DATA_DIR": str(data_dir),
            "SECRETS_RULES_FILE": "",
            "SECRETS_MAX_FILE_BYTES": str(max(fields["secrets_max_file_bytes"].default, max_file_bytes)),
            "SECRETS_CHUNK_BYTES": str(fields["secrets_chunk_bytes"].default),
            "SECRETS_MAX_DECOMPRESSION_RATIO": str(fields["secrets_max_decompression_ratio"].default),
        }
    )
    return env


def previous_release(target: Path) -> tuple[list[str] | None, str]:
    """The command that runs AssetMon at PREVIOUS_RELEASE (its `app` package extracted under `target`),
    or None and why not."""
    try:
        archive = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "archive", PREVIOUS_RELEASE, "app"],
            capture_output=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"git is not usable here ({exc})"
    if archive.returncode != 0:
        return None, f"commit {PREVIOUS_RELEASE[:12]} is not in this clone ({archive.stderr.decode()[-200:].strip()})"
    target.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    # Its own `app` comes first on sys.path; the venv's editable install of this checkout is not consulted.
    launcher = f"import sys; sys.path.insert(0, {str(target)!r}); from app.cli import main; main()"
    return [str(ASSETMON.with_name("python")), "-c", launcher], ""


def run_scan(path: Path, env: dict[str, str], workdir: Path, command: list[str] | None = None) -> Run:
    """Wall time (process start to exit), exit code, peak RSS and parsed JSON of one whole-process scan."""
    out_path, err_path = workdir / "scan.out", workdir / "scan.err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [*(command or [str(ASSETMON)]), "secrets", "scan", str(path), "--format", "json"],
            stdout=out,
            stderr=err,
            env=env,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"scan exited {proc.returncode}: {err_path.read_text(errors='replace')[-2000:]}")
    report = json.loads(out_path.read_bytes())
    return Run(seconds, proc.returncode, usage.ru_maxrss / 1024, report)  # ru_maxrss is in KiB on Linux


def baseline(files: list[Path], ruleset: RuleSet) -> tuple[int, float, int]:
    """SecretFinder's approach: beautify each whole file, then run every rule's regex over the result."""
    import jsbeautifier

    total = matches = 0
    started = time.perf_counter()
    for path in files:
        raw = path.read_bytes()
        total += len(raw)
        pretty = jsbeautifier.beautify(raw.decode("utf-8", "replace")).encode()
        for rule in ruleset.rules:
            matches += sum(1 for _ in rule.regex.finditer(pretty))
    return total, time.perf_counter() - started, matches


def accuracy(corpus: Corpus, findings: list[dict]) -> dict:
    expected = corpus.expected or {}
    got: dict[tuple[str, int, int], str] = {}
    for f in findings:
        got[(os.path.normpath(f["file"]), f["start"], f["end"])] = f["rule"]
    true_positive = sum(1 for key, rule in got.items() if expected.get(key) == rule)
    wrong_rule = sorted((k, r, expected[k]) for k, r in got.items() if k in expected and expected[k] != r)
    false = [(k, r) for k, r in got.items() if expected.get(k) != r]
    decoy_hits = [
        (k, r)
        for k, r in false
        if any(k[1] < end and start < k[2] for start, end in (corpus.decoys or {}).get(k[0], []))
    ]
    clean_hits = [(k, r) for k, r in false if k[0] not in (corpus.decoys or {})]
    missed = sorted((k, r) for k, r in expected.items() if got.get(k) != r)
    return {
        "planted": len(expected),
        "found": true_positive,
        "false": false,
        "decoy_hits": decoy_hits,
        "clean_hits": clean_hits,
        "wrong_rule": wrong_rule,
        "missed": missed,
        "recall": true_positive / len(expected) if expected else 0.0,
        "precision": true_positive / len(got) if got else 0.0,
        "distinct": len(got),
        "raw": len(findings),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=200.0, help="corpus size and single-file size (MB)")
    parser.add_argument("--runs", type=int, default=3, help="warm whole-process runs (after one cold run)")
    parser.add_argument("--baseline-mb", type=float, default=1.0, help="sample size for beautify-then-regex")
    parser.add_argument("--seed", type=int, default=20261124)
    parser.add_argument(
        "--rules-per-file",
        type=int,
        default=60,
        help="rules planted in each main bundle, a random sample (0: every rule: ~20,000 secrets in 200 MB)",
    )
    args = parser.parse_args()
    if args.runs < 1 or args.size_mb <= 0 or args.baseline_mb <= 0:
        parser.error("--runs, --size-mb and --baseline-mb must be positive")
    if not ASSETMON.exists():
        parser.error(f"{ASSETMON} not found: install the project into .venv first")

    ruleset = load_rules()
    matcher = Matcher(ruleset)  # planting only; the scans compile or load their own DB
    size_bytes = int(args.size_mb * MB)
    results: list[tuple[str, float, float, float | None]] = []  # (phase, seconds, MB, peak RSS MB)

    with tempfile.TemporaryDirectory(prefix="assetmon-secrets-bench-") as tmp:
        root = Path(tmp).resolve()
        data_dir = root / "data"
        env = scan_env(data_dir, size_bytes + MB)
        started = time.perf_counter()
        corpus = build_corpus(root / "corpus", size_bytes, ruleset, matcher, args.seed, args.rules_per_file)
        built = time.perf_counter() - started
        print(
            f"corpus: {corpus.bytes / MB:.1f} MB in {corpus.files} files, {len(corpus.expected)} fake credentials and "
            f"{sum(len(v) for v in corpus.decoys.values())} decoys planted in {corpus.planted_files} files "
            f"(built in {built:.1f} s)",
            flush=True,
        )

        # 1. whole-process throughput: cold DB cache, then warm; 1b. the 59-rule release, alternated
        previous, why_not = previous_release(root / "previous")
        previous_env = {**env, "DATA_DIR": str(root / "previous-data")}
        cold = run_scan(corpus.root, env, root)
        cache_files = sorted(p.name for p in (data_dir / "cache").glob("*.db"))
        if previous:
            run_scan(corpus.root, previous_env, root, previous)  # its cold run: compiles its DB
        warm, previous_warm = [], []
        for _ in range(args.runs):
            warm.append(run_scan(corpus.root, env, root))
            if previous:
                previous_warm.append(run_scan(corpus.root, previous_env, root, previous))
        scanned = [r.report["bytes_scanned"] for r in (cold, *warm)]
        results.append(("corpus scan, cold DB cache", cold.seconds, scanned[0] / MB, cold.max_rss_mb))
        for i, r in enumerate(warm, 1):
            results.append((f"corpus scan, warm run {i}", r.seconds, r.report["bytes_scanned"] / MB, r.max_rss_mb))
        for i, r in enumerate(previous_warm, 1):
            results.append((f"59-rule release, warm run {i}", r.seconds, r.report["bytes_scanned"] / MB, r.max_rss_mb))
        previous_mbps = [r.report["bytes_scanned"] / MB / r.seconds for r in previous_warm]
        warm_mbps = [r.report["bytes_scanned"] / MB / r.seconds for r in warm]
        in_process = statistics.median(r.report["seconds"] for r in warm)
        warm_text = ", ".join(f"{r.seconds:.2f}" for r in warm)
        print(f"scans done ({cold.seconds:.2f} s cold, warm {warm_text} s)", flush=True)

        # 2. beautify-then-regex on a sample of the same (planted) bundles, smallest first
        planted = sorted((Path(name) for name in corpus.decoys), key=lambda p: p.stat().st_size)
        sample: list[Path] = []
        for path in planted:
            if sum(p.stat().st_size for p in sample) >= args.baseline_mb * MB:
                break
            sample.append(path)
        base_bytes, base_seconds, base_matches = baseline(sample, ruleset)
        results.append((f"beautify+regex, {len(sample)} files", base_seconds, base_bytes / MB, None))
        print(f"baseline done ({base_seconds:.1f} s, {base_matches} regex matches)", flush=True)

        # 3. peak memory on one big file
        big = root / "single.js"
        big_bytes = concatenate(corpus.root, big, size_bytes)
        single = run_scan(big, env, root)
        single_mb = single.report["bytes_scanned"] / MB
        results.append(("single-file scan, warm", single.seconds, single_mb, single.max_rss_mb))

        # 4. accuracy of the whole-process findings
        acc = accuracy(corpus, warm[0].report["findings"])
        consistent = all(len(r.report["findings"]) == len(warm[0].report["findings"]) for r in (cold, *warm))

    ours = statistics.median(warm_mbps)
    base_mbps = base_bytes / MB / base_seconds
    speedup = ours / base_mbps
    print(
        f"\nSecret scanning, {os.cpu_count()} CPUs, {len(ruleset)} rules "
        f"({args.rules_per_file or len(ruleset)} planted per main bundle); MB = 2^20 bytes; files in page cache"
    )
    print(f"{'phase':<34}{'seconds':>9}{'MB':>9}{'MB/s':>10}{'peak RSS MB':>13}")
    for name, seconds, size, rss in results:
        rss_text = f"{rss:.0f}" if rss is not None else "-"
        print(f"{name:<34}{seconds:>9.2f}{size:>9.1f}{size / seconds:>10.2f}{rss_text:>13}")
    print(
        f"\nwarm whole-process MB/s: best {max(warm_mbps):.1f}, median {ours:.1f} "
        f"(in-process scan time, median: {in_process:.2f} s = {scanned[-1] / MB / in_process:.1f} MB/s)"
    )
    if previous_mbps:
        before = statistics.median(previous_mbps)
        print(
            f"the 59-rule release ({PREVIOUS_RELEASE[:12]}) on the same corpus, same machine, alternated runs: "
            f"median {before:.1f} MB/s; {len(ruleset)} rules now: {ours:.1f} MB/s ({ours / before:.2f}x)"
        )
    else:
        print(f"the 59-rule release: not measured, {why_not}")
    warm_median = statistics.median(r.seconds for r in warm)
    print(
        f"cold vs warm DB cache: {cold.seconds:.2f} s vs {warm_median:.2f} s (median), "
        f"{cold.seconds - warm_median:+.2f} s; cache written: {', '.join(cache_files) or 'NONE'}"
    )
    print(f"beautify+regex: {base_mbps:.3f} MB/s on {base_bytes / MB:.2f} MB; speed-up {speedup:.0f}x")
    print(
        f"accuracy: {acc['found']}/{acc['planted']} planted found, {len(acc['false'])} false "
        f"({len(acc['decoy_hits'])} from decoys, {len(acc['clean_hits'])} in unplanted files, "
        f"{len(acc['wrong_rule'])} right place but wrong rule); {acc['raw']} findings in the JSON"
    )
    for (file, start, end), rule in (acc["false"] + [(k, f"MISSED {r}") for k, r in acc["missed"]])[:15]:
        print(f"  {rule:<32} {Path(file).relative_to(root)}:{start}-{end}")
    if not consistent:
        print("  note: the runs did not all report the same number of findings")

    checks = [
        (
            f"bytes_scanned >= corpus ({min(scanned)} >= {corpus.bytes}), single file ({big_bytes})",
            min(scanned) >= corpus.bytes and single.report["bytes_scanned"] >= big_bytes,
        ),
        (f"throughput, warm median {ours:.1f} MB/s (target >= {TARGET_MBPS:.0f})", ours >= TARGET_MBPS),
        (f"speed-up over beautify+regex {speedup:.0f}x (target >= {TARGET_SPEEDUP:.0f}x)", speedup >= TARGET_SPEEDUP),
        (
            f"peak RSS on a {big_bytes / MB:.0f} MB file {single.max_rss_mb:.0f} MB (target <= {TARGET_RSS_MB:.0f})",
            single.max_rss_mb <= TARGET_RSS_MB,
        ),
        (f"recall {acc['recall']:.4f} (target >= {TARGET_RECALL})", acc["recall"] >= TARGET_RECALL),
        (f"precision {acc['precision']:.4f} (target >= {TARGET_PRECISION})", acc["precision"] >= TARGET_PRECISION),
        (f"findings from decoys: {len(acc['decoy_hits'])} (target 0)", not acc["decoy_hits"]),
    ]
    print()
    for text, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
