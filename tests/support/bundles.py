"""Real public JavaScript bundles, fetched at test time with `npm pack` and cached under tests/.cache."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import tarfile
from pathlib import Path

CACHE = Path(__file__).resolve().parents[1] / ".cache" / "npm"

PACKAGES = {
    "react-dom": "19.3.1",
    "lodash": "4.18.1",
    "three": "0.187.0",
    "pdfjs-dist": "6.5.438",
    "monaco-editor": "0.57.0",
}

# One or two big, representative files per package for planting secrets into.
MAIN_BUNDLES = [
    "react-dom/cjs/react-dom-client.production.js",
    "lodash/lodash.min.js",
    "three/build/three.core.js",
    "pdfjs-dist/build/pdf.min.mjs",
    "pdfjs-dist/build/pdf.worker.min.mjs",
    "monaco-editor/min/vs/language/typescript/ts.worker.js",
]


def _fetch(name: str, version: str) -> Path:
    target = CACHE / f"{name}-{version}"
    if (target / ".done").exists():
        return target / "package"
    if shutil.which("npm") is None:
        raise RuntimeError("npm is needed to fetch the test bundles (apt-get install npm)")
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / ".done").exists():
            return target / "package"
        out = subprocess.run(
            ["npm", "pack", f"{name}@{version}", "--silent", "--pack-destination", str(CACHE)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if out.returncode != 0:
            raise RuntimeError(f"npm pack {name}@{version} failed: {out.stderr.strip()}")
        tarball = CACHE / out.stdout.strip().splitlines()[-1]
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir()
        with tarfile.open(tarball) as tar:
            tar.extractall(target, filter="data")
        tarball.unlink()
        (target / ".done").touch()
    return target / "package"


def package_dirs() -> dict[str, Path]:
    return {name: _fetch(name, version) for name, version in PACKAGES.items()}


def main_bundles() -> list[Path]:
    dirs = package_dirs()
    files = []
    for rel in MAIN_BUNDLES:
        name, _, inner = rel.partition("/")
        path = dirs[name] / inner
        if not path.exists():
            raise RuntimeError(f"expected bundle missing from the npm package: {rel}")
        files.append(path)
    return files
