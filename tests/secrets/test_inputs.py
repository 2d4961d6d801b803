"""Hostile and awkward input: bounded time and memory, a clear reason, never a crash."""

import gzip
import json
import os
import random
import zlib

import brotli
import pytest

from app.errors import SkipFile
from app.secrets.engine import Matcher, scan_bytes
from app.secrets.inputs import Limits, read_chunks
from app.secrets.rules import generate, load_rules
from app.secrets.scan import scan_paths
from tests.support.processes import RULE_CACHE

RULES = load_rules()


@pytest.fixture(scope="module")
def matcher():
    return Matcher(RULES, RULE_CACHE)


def _token(seed: int = 1) -> str:
    return generate("ghp_[0-9A-Za-z]{36}", random.Random(seed))


def _scan(matcher, *paths, **limits):
    return scan_paths(list(paths), matcher=matcher, limits=Limits(**limits))


def test_binary_file_is_skipped_with_a_reason(matcher, tmp_path):
    path = tmp_path / "blob.js"
    path.write_bytes(os.urandom(4096) + b"\0" + f'x="{_token()}"'.encode())
    report = _scan(matcher, path)
    assert report.findings == [] and report.skipped == [
        {"file": str(path), "reason": "binary file (contains NUL bytes)"}
    ]


def test_invalid_utf8_and_late_nul_bytes_do_not_hide_secrets(matcher, tmp_path):
    token = _token()
    prefix = b"\xff\xfe\xc3\x28 var a='\x80\x81';" * 1000 + b"A" * 9000 + b"\0\0"
    data = prefix + f'k="{token}"'.encode() + b"\xed\xa0\x80"
    path = tmp_path / "weird.js"
    path.write_bytes(data)
    report = _scan(matcher, path)
    assert [(f.start, f.value.decode()) for f in report.findings] == [(len(prefix) + 3, token)]


def test_a_1gb_file_is_skipped_at_once(matcher, tmp_path):
    path = tmp_path / "huge.js"
    with open(path, "wb") as handle:  # sparse: no disk used
        handle.truncate(1 << 30)
    report = _scan(matcher, path)
    assert report.findings == [] and "larger than the 256.0 MiB cap" in report.skipped[0]["reason"]


def test_gzip_bomb_is_refused_early(matcher, tmp_path):
    path = tmp_path / "bomb.js.gz"
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    with open(path, "wb") as handle:
        chunk = b" " * (1 << 20)
        for _ in range(512):  # 512 MiB of spaces, ~0.5 MiB compressed
            handle.write(compressor.compress(chunk))
        handle.write(compressor.flush())
    report = _scan(matcher, path)
    assert report.findings == [] and "decompression" in report.skipped[0]["reason"]


def test_brotli_bomb_is_refused_within_bounded_memory(matcher, tmp_path):
    import resource

    path = tmp_path / "bomb.js.br"
    compressor = brotli.Compressor(quality=1)
    with open(path, "wb") as handle:  # 512 MiB of "a" in a few hundred KiB, never whole in memory
        block = b"a" * (1 << 20)
        for _ in range(512):
            handle.write(compressor.process(block))
        handle.write(compressor.finish())
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report = _scan(matcher, path)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert report.findings == [] and "decompression" in report.skipped[0]["reason"]
    assert grown_mib < 200  # the decoder's output is bounded per step; it never inflates the whole bomb


def test_gzip_and_brotli_files_are_scanned(matcher, tmp_path):
    token = _token(2)
    body = (b"function f(){return 1};" * 5000) + f'var t="{token}";'.encode()
    (tmp_path / "a.js.gz").write_bytes(gzip.compress(body))
    (tmp_path / "b.js.br").write_bytes(brotli.compress(body))
    (tmp_path / "c.js.gz").write_bytes(b"not gzip at all")
    report = _scan(matcher, tmp_path)
    assert sorted(f.file.rsplit("/", 1)[1] for f in report.findings) == ["a.js.gz", "b.js.br"]
    assert all(f.start == body.index(token.encode()) for f in report.findings)
    assert report.skipped[0]["file"].endswith("c.js.gz") and "corrupt gzip" in report.skipped[0]["reason"]


def test_deeply_nested_json_and_maps(matcher, tmp_path):
    deep = b"[" * 200_000 + b"]" * 200_000
    (tmp_path / "deep.json").write_bytes(deep)
    (tmp_path / "deep.js.map").write_bytes(b'{"version":3,"sources":[' + deep + b'],"sourcesContent":[' + deep + b"]}")
    report = _scan(matcher, tmp_path)
    assert report.files_scanned == 2 and report.findings == []


def test_ten_million_as(matcher):
    assert scan_bytes(matcher, b"a" * 10_000_000) == []


def test_secret_across_a_chunk_border_is_found_once(matcher, tmp_path):
    token = _token(3)
    chunk = 64 << 10
    for shift in range(-len(token) - 4, 5, 7):
        head = b"x;" * ((chunk + shift) // 2) + b'k="'
        data = head + token.encode() + b'";' + b"y;" * 40_000
        path = tmp_path / f"border{shift}.js"
        path.write_bytes(data)
        report = _scan(matcher, path, chunk_size=chunk)
        assert [(f.start, f.end) for f in report.findings] == [(len(head), len(head) + len(token))], shift


def test_line_and_column_count_characters_across_chunks(matcher, tmp_path):
    token = _token(5)
    chunk = 64 << 10
    # A long minified line full of multi-byte characters, spanning several chunks before the secret.
    prefix = "a=1;\nb=2;\n" + 'var s="ключ→値";' * 12_000 + 'k="'
    path = tmp_path / "wide.js"
    path.write_bytes((prefix + token + '";\n').encode())
    (f,) = _scan(matcher, path, chunk_size=chunk).findings
    assert f.start == len(prefix.encode()) and f.line == 3
    assert f.column == len(prefix) - prefix.rindex("\n")  # characters since the line's start, 1-based


def test_source_map_findings_name_the_original_source(matcher, tmp_path):
    token = _token(4)
    original = 'import x from "y";\n\nexport const config = {\n  githubToken: "' + token + '",\n};\n'
    sourcemap = {
        "version": 3,
        "file": "main.js",
        "sources": ["webpack://app/./src/util.js", "webpack://app/./src/config.js"],
        "sourcesContent": ["export const a = 1;\n", original],
        "mappings": "AAAA",
    }
    path = tmp_path / "main.js.map"
    path.write_text(json.dumps(sourcemap))
    (finding,) = _scan(matcher, path).findings
    assert finding.source == "webpack://app/./src/config.js"
    assert finding.source_line == 4 and finding.source_column == len('  githubToken: "') + 1
    assert path.read_bytes()[finding.start : finding.end] == token.encode()


def test_html_inline_scripts(matcher, tmp_path):
    token = _token(5)
    html = f'<!doctype html><title>x</title><script>\nwindow.cfg = {{gh: "{token}"}};\n</script>'
    path = tmp_path / "index.html"
    path.write_text(html)
    (finding,) = _scan(matcher, path).findings
    assert finding.line == 2 and finding.start == html.index(token)


def test_missing_paths_and_directories_without_js(matcher, tmp_path):
    (tmp_path / "notes.txt").write_text(f'gh="{_token()}"')  # not a JS-like file: not picked up from a directory
    report = _scan(matcher, tmp_path, tmp_path / "missing.js")
    assert report.files_scanned == 0 and report.skipped == [
        {"file": str(tmp_path / "missing.js"), "reason": "no such file or directory"}
    ]
    explicit = _scan(matcher, tmp_path / "notes.txt")  # named explicitly: scanned whatever its name
    assert len(explicit.findings) == 1


def test_parallel_scan_gives_the_same_report_in_the_same_order(matcher, tmp_path):
    for i in range(150):
        body = f"var x{i}=1;" * 50 + (f'var t="{_token(100 + i)}";' if i % 7 == 0 else "")
        (tmp_path / f"f{i:03}.js").write_text(body)
    serial = scan_paths([tmp_path], matcher=matcher, processes=1)
    parallel = scan_paths([tmp_path], matcher=matcher, processes=2)
    assert len(serial.findings) == 22 and serial.files_scanned == parallel.files_scanned == 150
    assert [(f.file, f.start, f.fingerprint) for f in parallel.findings] == [
        (f.file, f.start, f.fingerprint) for f in serial.findings
    ]
    assert parallel.bytes_scanned == serial.bytes_scanned


def test_a_fifo_in_place_of_a_file_is_skipped_not_waited_on(matcher, tmp_path):
    path = tmp_path / "pipe.js"
    os.mkfifo(path)
    report = _scan(matcher, path)
    assert report.findings == [] and report.skipped == [{"file": str(path), "reason": "not a regular file"}]
    with pytest.raises(SkipFile, match="not a regular file"):
        list(read_chunks(path, Limits()))


def test_small_and_chunked_reads_give_the_whole_file(tmp_path):
    data = os.urandom(3000).replace(b"\0", b"a")
    path = tmp_path / "f.js"
    for size in (0, 1, 1023, 1024, 1025, 3000):
        path.write_bytes(data[:size])
        chunks = list(read_chunks(path, Limits(chunk_size=1024)))
        assert b"".join(chunks) == data[:size] and all(0 < len(c) <= 1024 for c in chunks)
