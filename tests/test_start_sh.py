"""./start.sh as a user runs it: status block, supervision, and a clean Ctrl+C."""

import os
import signal
import subprocess
import threading
import uuid
from pathlib import Path

import httpx

from tests.support.processes import ROOT, RedisServer, app_env, free_port, processes_with_env, wait_for


class StartSh:
    def __init__(self, env: dict[str, str]) -> None:
        self.marker = f"ASSETMON_TEST_MARKER={uuid.uuid4().hex}"
        key, value = self.marker.split("=")
        self.port = free_port()
        self.env = dict(env, PORT=str(self.port), HOST="127.0.0.1", **{key: value})
        self.output: list[str] = []
        self.proc = subprocess.Popen(
            [str(ROOT / "start.sh")],
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.output.append(line)

    @property
    def text(self) -> str:
        return "".join(self.output)

    def health(self) -> dict:
        return httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=5).json()

    def pids(self, needle: str) -> list[int]:
        return [pid for pid, cmd in processes_with_env(self.marker) if needle in cmd]

    def finish(self, sig: int = signal.SIGINT, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        # Its last lines may still be in the pipe when it exits: read them all before anyone looks.
        self.reader.join(timeout=10)
        return code

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        for pid, _ in processes_with_env(self.marker):
            os.kill(pid, signal.SIGKILL)


def test_start_supervise_and_ctrl_c(data_dir: Path):
    redis_port = free_port()
    run = StartSh(app_env(data_dir, f"redis://localhost:{redis_port}/0", START_REDIS=1))
    try:
        wait_for(lambda: "AssetMon is running" in run.text, 90, what="status block")
        assert "Mode   celery" in run.text, run.text
        assert f"http://127.0.0.1:{run.port}" in run.text
        assert "started by start.sh" in run.text
        assert run.health()["mode"] == "celery"
        assert (data_dir / "redis").is_dir()

        # kill -9 the worker: start.sh restarts it
        old = run.pids("celery")
        assert old
        main_worker = min(old)
        os.kill(main_worker, signal.SIGKILL)
        wait_for(lambda: "the worker exited" in run.text, 20, what="crash noticed")
        wait_for(lambda: [p for p in run.pids("celery") if p not in old], 30, what="a new worker")
        wait_for(lambda: run.health()["mode"] == "celery", 30, what="celery mode again")

        assert run.finish(signal.SIGINT) == 0
        assert "stopped" in run.text
        leftovers = processes_with_env(run.marker)
        assert leftovers == [], leftovers
        with_redis = subprocess.run(["pgrep", "-f", f"redis-server 127.0.0.1:{redis_port}"], capture_output=True)
        assert with_redis.returncode == 1  # the Redis that start.sh started is gone
    finally:
        run.cleanup()


def test_fallback_then_redis_appears_then_web_dies(data_dir: Path, tmp_path: Path):
    redis = RedisServer(tmp_path / "redis")  # not started yet: start.sh must not start it (START_REDIS=0)
    run = StartSh(app_env(data_dir, redis.url, START_REDIS=0))
    try:
        wait_for(lambda: "AssetMon is running" in run.text, 90, what="status block")
        assert "Mode   fallback" in run.text
        assert "is not reachable" in run.text and "START_REDIS=0" in run.text
        assert run.health()["mode"] == "fallback"

        redis.start()  # Redis comes up later: start.sh starts a worker
        wait_for(lambda: run.health()["mode"] == "celery", 60, what="celery mode once Redis is up")

        web_pid = run.pids("uvicorn")[0]
        os.kill(web_pid, signal.SIGKILL)
        assert run.proc.wait(timeout=60) != 0
        assert "web server exited unexpectedly" in run.text
        assert processes_with_env(run.marker) == []
        assert redis.ping()  # a Redis that start.sh did not start is left alone
    finally:
        run.cleanup()
        redis.stop()
