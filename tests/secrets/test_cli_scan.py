"""`assetmon secrets scan` as a user runs it: a real subprocess, a temp data dir, fake secrets made at test time.

Every CLI call is made once per module (fixtures below) and shared by the tests that check its output,
so the whole file costs well under twenty process starts.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.secrets.rules import fake_secret, generate, load_rules
from tests.support.processes import app_env, run_cli

RULES = load_rules()
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"  # scanning needs no broker; nothing listens on port 1
FINDING_FIELDS = {
    "rule",
    "description",
    "severity",
    "confidence",
    "file",
    "start",
    "end",
    "line",
    "column",
    "secret",
    "fingerprint",
    "context",
}
ANSI = re.compile(r"\x1b\[")


def fake(rule_id: str, seed: str) -> str:
    """A fresh fake value in the shape a shipped rule expects (never a real credential)."""
    return fake_secret(RULES.by_id(rule_id), random.Random(f"test_cli_scan:{rule_id}:{seed}"))


# ---------------------------------------------------------------- environment and inputs


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The CLI's environment: its own data dir (the compiled-rules cache lands there), no user rule file,
    and output that is a pipe of the default 80 columns with nothing forcing colour on."""
    data_dir = tmp_path_factory.mktemp("data")
    base = app_env(data_dir, UNREACHABLE_REDIS)
    cli_env = {
        k: v
        for k, v in base.items()
        if not k.startswith("SECRETS_")
        and k not in ("FORCE_COLOR", "CLICOLOR_FORCE", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "NO_COLOR", "LINES")
    }
    cli_env.update(SECRETS_RULES_FILE="", COLUMNS="80")
    return cli_env


@dataclass(frozen=True)
class Corpus:
    clean: Path
    a: Path  # one token on line 3, after non-ASCII text on lines 1 and 3, in a deep build path
    b: Path  # the same token again (another file, another offset) plus a second token
    token: str
    token2: str
    line3_prefix: str  # the text before the token on its line

    @property
    def a_bytes(self) -> bytes:
        return self.a.read_bytes()

    @property
    def b_bytes(self) -> bytes:
        return self.b.read_bytes()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    root = tmp_path_factory.mktemp("scan")
    token, token2 = fake("github-pat", "one"), fake("github-pat", "two")
    assert token != token2

    clean = root / "clean.js"
    clean.write_text('const answer = 42;\nconsole.log("nothing to report", answer);\n', encoding="utf-8")

    line3_prefix = "/* ключ доступа */ const GITHUB_TOKEN=`"
    # A build-output path as deep as a CI checkout's: the text report must still show all of it.
    a = root / "build" / "static" / "js" / "main.3f9a1c2b.chunk.js"
    a.parent.mkdir(parents=True)
    a.write_text(
        "// Grüße — ünïcödé ✓ 日本語 €\n"
        'var config = {region: "eu-west-1"};\n'
        f"{line3_prefix}{token}`;\n"
        "export default config;\n",
        encoding="utf-8",
    )
    b_dir = root / "dist with space"  # a path a SARIF uri has to percent-encode
    b_dir.mkdir()
    b = b_dir / "b.js"
    b.write_text(
        "const other = 1;\n"
        "function load(){return 2}\n"
        f'fetch(u,{{headers:{{Authorization:"token {token}"}}}});\n'
        f"const k2=`{token2}`;\n",
        encoding="utf-8",
    )
    return Corpus(clean, a, b, token, token2, line3_prefix)


def scan(env: dict[str, str], *args: str | Path) -> subprocess.CompletedProcess:
    return run_cli(env, "secrets", "scan", *(str(a) for a in args), timeout=60)


def parse(out: subprocess.CompletedProcess) -> dict:
    assert "Traceback" not in out.stderr, out.stderr
    return json.loads(out.stdout)


# One CLI call each, shared by the tests below.


@pytest.fixture(scope="module")
def json_plain(env, corpus):
    return scan(env, corpus.a, corpus.b, "--format", "json")


@pytest.fixture(scope="module")
def json_reveal(env, corpus):
    return scan(env, corpus.a, corpus.b, "--format", "json", "--reveal")


@pytest.fixture(scope="module")
def sarif_plain(env, corpus):
    return scan(env, corpus.a, corpus.b, "--format", "sarif")


@pytest.fixture(scope="module")
def sarif_reveal(env, corpus):
    return scan(env, corpus.a, "--format", "sarif", "--reveal")


@pytest.fixture(scope="module")
def text_plain(env, corpus):
    return scan(env, corpus.a)  # text is the default format


@pytest.fixture(scope="module")
def text_reveal(env, corpus):
    return scan(env, corpus.a, "--format", "text", "--reveal")


def by_file(findings: list[dict]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for f in sorted(findings, key=lambda f: (f["file"], f["start"])):
        grouped.setdefault(f["file"], []).append(f)
    return grouped


# ---------------------------------------------------------------- exit codes


def test_clean_file_exits_0_with_no_findings(env, corpus):
    out = scan(env, corpus.clean, "--format", "json")
    assert out.returncode == 0, out.stderr
    body = parse(out)
    assert body["findings"] == []
    assert body["files_scanned"] == 1
    assert body["bytes_scanned"] == len(corpus.clean.read_bytes())


def test_findings_exit_1(json_plain, json_reveal, sarif_plain, sarif_reveal, text_plain, text_reveal):
    for out in (json_plain, json_reveal, sarif_plain, sarif_reveal, text_plain, text_reveal):
        assert out.returncode == 1, (out.args, out.stderr)
        assert "Traceback" not in out.stderr


ERROR_CASES = {
    # case: (a missing path to scan, or the body of a --rules file (None: no such file); text the message must contain;
    #        whether the message must name the path, exactly as given; a bad rule is named by its id instead)
    "missing-path": ("missing:does-not-exist.js", "no such file or directory", True),
    # Bracketed names are ordinary on disk (Next.js routes: pages/[slug].js); the message must show them as they are.
    "missing-path-with-brackets": ("missing:pages/[slug].js", "no such file or directory", True),
    "rules-not-toml": ("[[rules]\nid = 'x", "not valid TOML", True),
    "rules-bad-regex": (
        "[[rules]]\nid = 'acme-broken'\ndescription = 'd'\npattern = '(?P<secret>acme_[0-9a-f]{32}'\nkeywords = ['acme_']\n",
        "'acme-broken': invalid pattern",
        False,
    ),
    "rules-linear-engine-cannot-run": (
        "[[rules]]\nid = 'acme-lookbehind'\ndescription = 'd'\npattern = '(?<=k=)(?P<secret>acme_[0-9a-f]{32})'\nkeywords = ['acme_']\n",
        "'acme-lookbehind': the pattern cannot run in the linear-time engine",
        False,
    ),
    "rules-file-missing": (None, "cannot read rule file", True),
    # The message names the table the file must contain.
    "rules-without-rules-tables": ("title = 'no rules here'\n", "must contain [[rules]] tables", True),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_errors_exit_2_with_one_line_message(env, corpus, tmp_path, case):
    spec, needle, names_path = ERROR_CASES[case]
    if spec is not None and spec.startswith("missing:"):
        path = tmp_path / spec.removeprefix("missing:")
        out = scan(env, path, "--format", "json")
    else:
        path = tmp_path / "rules.toml"
        if spec is not None:
            path.write_text(spec, encoding="utf-8")
        out = scan(env, corpus.a, "--format", "json", "--rules", path)
    assert out.returncode == 2, (case, out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr, out.stderr
    assert out.stdout == "", "no report on an error"
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), out.stderr
    assert needle in lines[0], lines[0]
    if names_path:
        assert str(path) in lines[0], lines[0]
    assert not ANSI.search(out.stderr)


# ---------------------------------------------------------------- JSON


def test_json_structure_and_counts(json_plain, corpus):
    body = parse(json_plain)
    assert {"findings", "files_scanned", "bytes_scanned", "seconds"} <= set(body)
    assert body["files_scanned"] == 2
    assert body["bytes_scanned"] == len(corpus.a_bytes) + len(corpus.b_bytes)
    assert isinstance(body["seconds"], int | float) and body["seconds"] >= 0
    assert body.get("skipped", []) == [] and body.get("warnings", []) == []
    grouped = by_file(body["findings"])
    assert [len(grouped[str(corpus.a)]), len(grouped[str(corpus.b)])] == [1, 2]
    for f in body["findings"]:
        assert set(f) >= FINDING_FIELDS, f
        assert isinstance(f["start"], int) and isinstance(f["end"], int) and f["end"] > f["start"]
        assert re.fullmatch(r"[0-9a-f]{16,}", f["fingerprint"]), f["fingerprint"]


def test_json_finding_fields_and_byte_offsets(json_plain, corpus):
    data = corpus.a_bytes
    token = corpus.token.encode()
    # The non-ASCII text before the token makes byte and character offsets differ: the test can tell them apart.
    assert data.index(token) != data.decode("utf-8").index(corpus.token)

    (f,) = by_file(parse(json_plain)["findings"])[str(corpus.a)]
    rule = RULES.by_id("github-pat")
    assert (f["rule"], f["description"], f["severity"], f["confidence"]) == (
        rule.id,
        rule.description,
        rule.severity,
        "high",  # the fake token's CRC32 tail holds (app/secrets/proofs.py)
    )
    assert f["file"] == str(corpus.a)
    assert (f["start"], f["end"]) == (data.index(token), data.index(token) + len(token))
    assert data[f["start"] : f["end"]] == token  # offsets of the secret itself, in bytes
    assert f["line"] == 3
    assert f["column"] == len(corpus.line3_prefix) + 1  # 1-based, in characters (as editors count)
    assert "GITHUB_TOKEN" in f["context"] and corpus.token not in f["context"]


def test_json_offsets_in_second_file(json_plain, corpus):
    data = corpus.b_bytes
    first, second = by_file(parse(json_plain)["findings"])[str(corpus.b)]
    for f, value in ((first, corpus.token), (second, corpus.token2)):
        assert data[f["start"] : f["end"]] == value.encode()
        line_start = data.rfind(b"\n", 0, f["start"]) + 1
        assert f["line"] == data[: f["start"]].count(b"\n") + 1
        assert f["column"] == f["start"] - line_start + 1
    assert (first["line"], second["line"]) == (3, 4)


def test_same_value_in_two_files_has_the_same_fingerprint(json_plain, corpus):
    grouped = by_file(parse(json_plain)["findings"])
    (in_a,) = grouped[str(corpus.a)]
    same_in_b, other_in_b = grouped[str(corpus.b)]
    assert in_a["start"] != same_in_b["start"] and in_a["file"] != same_in_b["file"]
    assert in_a["fingerprint"] == same_in_b["fingerprint"]
    assert other_in_b["fingerprint"] != in_a["fingerprint"]


def test_json_redacts_unless_revealed(json_plain, json_reveal, corpus):
    for secret in (corpus.token, corpus.token2):
        assert secret not in json_plain.stdout and secret[-16:] not in json_plain.stdout
        assert secret not in json_plain.stderr
    plain = parse(json_plain)["findings"]
    assert all(f["secret"] not in (corpus.token, corpus.token2) for f in plain)

    revealed = by_file(parse(json_reveal)["findings"])
    (in_a,) = revealed[str(corpus.a)]
    assert in_a["secret"] == corpus.token and corpus.token in in_a["context"]
    assert [f["secret"] for f in revealed[str(corpus.b)]] == [corpus.token, corpus.token2]
    # Revealing changes only the values shown, never where they are or how they are identified.
    strip = ("secret", "context")
    assert [{k: v for k, v in f.items() if k not in strip} for f in plain] == [
        {k: v for k, v in f.items() if k not in strip} for f in parse(json_reveal)["findings"]
    ]


# ---------------------------------------------------------------- SARIF


def _uri(result: dict) -> str:
    return result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]


def _results_for(sarif: dict, path: Path) -> list[dict]:
    """Results located in `path`, whether the uri is a plain path, percent-encoded, or a file:// URI."""
    return [
        r for r in sarif["runs"][0]["results"] if urllib.parse.unquote(_uri(r)).removeprefix("file://") == str(path)
    ]


def test_sarif_shape(sarif_plain, json_plain, corpus):
    sarif = parse(sarif_plain)
    assert sarif["version"] == "2.1.0"
    assert "sarif" in sarif["$schema"] and "2.1.0" in sarif["$schema"]
    assert len(sarif["runs"]) == 1
    run = sarif["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "AssetMon"
    rule_ids = [r["id"] for r in driver["rules"]]
    assert rule_ids == ["github-pat"]
    assert driver["rules"][0]["shortDescription"]["text"] == RULES.by_id("github-pat").description

    fingerprints = {f["fingerprint"] for f in parse(json_plain)["findings"]}
    assert len(run["results"]) == 3
    for result in run["results"]:
        assert result["ruleId"] in rule_ids
        if "ruleIndex" in result:
            assert driver["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["level"] in ("none", "note", "warning", "error")
        assert result["message"]["text"]
        location = result["locations"][0]["physicalLocation"]
        assert location["artifactLocation"]["uri"]
        assert location["region"]["startLine"] >= 1 and location["region"]["startColumn"] >= 1
        assert set(result["partialFingerprints"].values()) & fingerprints

    (in_a,) = _results_for(sarif, corpus.a)
    assert in_a["level"] == "error"  # a critical finding
    assert in_a["locations"][0]["physicalLocation"]["region"]["startLine"] == 3
    (json_a,) = by_file(parse(json_plain)["findings"])[str(corpus.a)]
    assert json_a["fingerprint"] in in_a["partialFingerprints"].values()


def test_sarif_redacts_unless_revealed(sarif_plain, sarif_reveal, corpus):
    for secret in (corpus.token, corpus.token2):
        assert secret not in sarif_plain.stdout and secret[-16:] not in sarif_plain.stdout
    assert corpus.token in sarif_reveal.stdout
    assert len(parse(sarif_reveal)["runs"][0]["results"]) == 1


def test_sarif_start_column_counts_characters_not_bytes(sarif_plain, corpus):
    """SARIF columns are characters (run.columnKind: utf16CodeUnits or unicodeCodePoints; there is no byte
    kind). The text before the token on line 3 is Cyrillic (one UTF-16 unit and one code point per
    character, two bytes), so both kinds give the same column, and bytes give a different one."""
    (in_a,) = _results_for(parse(sarif_plain), corpus.a)
    region = in_a["locations"][0]["physicalLocation"]["region"]
    assert region["startLine"] == 3
    assert len(corpus.line3_prefix) + 1 != len(corpus.line3_prefix.encode()) + 1
    assert region["startColumn"] == len(corpus.line3_prefix) + 1, region
    if "byteOffset" in region:  # byte offsets are fine where SARIF says bytes
        assert region["byteOffset"] == corpus.a_bytes.index(corpus.token.encode())


def test_sarif_uri_is_a_valid_uri_reference(sarif_plain, corpus):
    """artifactLocation.uri must be an RFC 3986 URI reference: a space in a path is percent-encoded."""
    sarif = parse(sarif_plain)
    for result in sarif["runs"][0]["results"]:
        assert " " not in _uri(result), _uri(result)
    assert len(_results_for(sarif, corpus.b)) == 2  # and it still decodes to the scanned file


# ---------------------------------------------------------------- text


def test_text_output_is_plain_and_redacted(text_plain, corpus):
    out = text_plain.stdout
    assert not ANSI.search(out), "colour codes in piped output"
    assert "[/" not in out and "[bold" not in out, "unrendered markup"
    assert "github-pat" in out
    assert "1 finding(s) in 1 file(s)" in out
    assert corpus.token not in out and corpus.token[-16:] not in out
    assert corpus.token not in text_plain.stderr


def test_text_output_names_the_file_and_line(text_plain, corpus):
    """The location must survive an 80-column pipe (a CI log): the whole path, then :line:column."""
    assert f"{corpus.a}:3:" in text_plain.stdout, text_plain.stdout


def test_text_reveal_shows_the_secret(text_reveal, corpus):
    assert corpus.token in text_reveal.stdout
    assert "github-pat" in text_reveal.stdout
    assert not ANSI.search(text_reveal.stdout)


# ---------------------------------------------------------------- custom rules and confidence


CUSTOM_RULES = """\
version = 1

[[rules]]
id = "acme-cli-token"
description = "ACME internal API token (test rule)"
severity = "high"
confidence = "high"
pattern = '\\b(?P<secret>acme_live_[0-9a-f]{32})\\b'
keywords = ["acme_live_"]
entropy = 3.0
generate = "acme_live_[0-9a-f]{32}"
examples.true = ['const ACME={token:"{secret}"};']
examples.false = ['token:"acme_live_00000000000000000000000000000000"']
"""


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One finding of each confidence, plus one for a user rule; and a file with only a low-confidence one."""
    root = tmp_path_factory.mktemp("mixed")
    rules = root / "acme.toml"
    rules.write_text(CUSTOM_RULES, encoding="utf-8")
    acme = generate("acme_live_[0-9a-f]{32}", random.Random("test_cli_scan:acme"))
    values = {
        "generic-password": fake("generic-password", "mixed"),  # low
        "stripe-secret-key": fake("stripe-secret-key", "mixed"),  # medium: a prefix and the shape
        "github-pat": fake("github-pat", "mixed"),  # high: its checksum holds
        "acme-cli-token": acme,  # high, from the user's file
    }
    path = root / "mixed.js"
    path.write_text(
        f'login({{user:"svc-backup",password:"{values["generic-password"]}"}});\n'
        f'const stripe = require("stripe")("{values["stripe-secret-key"]}");\n'
        f"const GITHUB_TOKEN=`{values['github-pat']}`;\n"
        f'const ACME={{token:"{acme}"}};\n',
        encoding="utf-8",
    )
    low_only = root / "low.js"
    low_only.write_text(f'login({{user:"svc",password:"{fake("generic-password", "low")}"}});\n', encoding="utf-8")
    return {"rules": rules, "path": path, "low_only": low_only, "values": values}


def test_custom_rule_file_adds_a_rule(env, mixed):
    out = scan(env, mixed["path"], mixed["low_only"], "--format", "json", "--rules", mixed["rules"])
    assert out.returncode == 1, out.stderr
    grouped = by_file(parse(out)["findings"])
    # The low-only file has its finding without a confidence filter (so exit 0 below means filtered, not missed).
    assert [f["rule"] for f in grouped[str(mixed["low_only"])]] == ["generic-password"]
    findings = grouped[str(mixed["path"])]
    assert len(findings) == 4
    assert {f["rule"]: f["confidence"] for f in findings} == {
        "generic-password": "low",
        "stripe-secret-key": "medium",
        "github-pat": "high",
        "acme-cli-token": "high",
    }
    (acme,) = [f for f in findings if f["rule"] == "acme-cli-token"]
    assert acme["description"] == "ACME internal API token (test rule)" and acme["line"] == 4
    data = mixed["path"].read_bytes()
    for f in findings:
        assert data[f["start"] : f["end"]] == mixed["values"][f["rule"]].encode()


def test_min_confidence_high_drops_lower_confidence_findings(env, mixed):
    out = scan(env, mixed["path"], "--format", "json", "--rules", mixed["rules"], "--min-confidence", "high")
    assert out.returncode == 1, out.stderr
    assert sorted(f["rule"] for f in parse(out)["findings"]) == ["acme-cli-token", "github-pat"]

    # Only low-confidence findings, filtered away: nothing to report, so exit 0.
    low = scan(env, mixed["low_only"], "--format", "json", "--min-confidence", "high")
    assert low.returncode == 0, (low.stdout, low.stderr)
    assert parse(low)["findings"] == []
