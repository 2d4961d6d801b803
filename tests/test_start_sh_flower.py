"""./start.sh options, and --flower: Flower runs beside the worker, is restarted when it dies, stops on Ctrl+C."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import threading
import uuid
from pathlib import Path

import httpx
import pytest

from tests.support.processes import ROOT, app_env, free_port, processes_with_env, wait_for
from tests.test_start_sh import StartSh

FLOWER_INSTALLED = importlib.util.find_spec("flower") is not None


class StartShWith(StartSh):
    """StartSh, with command-line arguments for start.sh."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.marker = f"ASSETMON_TEST_MARKER={uuid.uuid4().hex}"
        key, value = self.marker.split("=")
        self.port = free_port()
        self.env = dict(env, PORT=str(self.port), HOST="127.0.0.1", **{key: value})
        self.output: list[str] = []
        self.proc = subprocess.Popen(
            [str(ROOT / "start.sh"), *args],
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()


def test_start_sh_options():
    usage = subprocess.run([str(ROOT / "start.sh"), "--help"], capture_output=True, text=True, timeout=10)
    assert usage.returncode == 0 and "--flower" in usage.stdout
    bad = subprocess.run([str(ROOT / "start.sh"), "--flowr"], capture_output=True, text=True, timeout=10)
    assert bad.returncode == 2 and "unknown option '--flowr'" in bad.stderr


@pytest.mark.skipif(not FLOWER_INSTALLED, reason="Flower is not installed (.venv/bin/pip install -e '.[flower]')")
def test_start_flower_supervised_and_stopped(data_dir: Path):
    flower_port = free_port()
    env = app_env(data_dir, f"redis://localhost:{free_port()}/0", START_REDIS=1)
    env.update(FLOWER_PORT=str(flower_port), FLOWER_UNAUTHENTICATED_API="true")  # Flower reads FLOWER_* itself
    run = StartShWith(env, "--flower")
    flower = f"http://127.0.0.1:{flower_port}"
    try:
        wait_for(lambda: "AssetMon is running" in run.text, 90, what="status block")
        assert f"Flower http://127.0.0.1:{flower_port}" in run.text, run.text
        wait_for(lambda: httpx.get(f"{flower}/healthcheck").text == "OK", 30, what="Flower")
        workers = wait_for(
            lambda: httpx.get(f"{flower}/api/workers?refresh=1", timeout=10).json(), 30, what="a worker in Flower"
        )
        assert any(name.startswith("assetmon@") for name in workers), workers

        # kill -9 Flower: start.sh starts it again
        old = run.pids(" flower ")
        assert len(old) == 1, old
        os.kill(old[0], signal.SIGKILL)
        wait_for(lambda: "Flower exited" in run.text, 20, what="Flower's exit noticed")
        wait_for(lambda: [p for p in run.pids(" flower ") if p not in old], 30, what="a new Flower")
        wait_for(lambda: httpx.get(f"{flower}/healthcheck").text == "OK", 30, what="Flower again")

        assert run.finish(signal.SIGINT) == 0
        assert processes_with_env(run.marker) == []
    finally:
        run.cleanup()
