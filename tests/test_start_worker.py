"""./start_worker.sh refuses bad options with a message, before it starts anything."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import UNREACHABLE_REDIS
from tests.support.processes import ROOT, app_env


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--queues", "scans,scan"], "unknown queue(s) scan"),
        (["--queues", ","], "WORKER_QUEUES is a comma-separated list of default, scans, secrets"),
        (["--concurrency", "0"], "WORKER_CONCURRENCY"),
        (["--concurrency", "many"], "WORKER_CONCURRENCY"),
        (["--name", "w 1"], "WORKER_NAME is a name such as w1"),
        (["--name", "w1;reboot"], "WORKER_NAME is a name such as w1"),
        (["--bogus"], "unknown option '--bogus'"),
    ],
)
def test_bad_options_are_refused(data_dir, args, needle):
    done = subprocess.run(
        [str(ROOT / "start_worker.sh"), *args],
        cwd=ROOT,
        env=app_env(data_dir, UNREACHABLE_REDIS),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2, done
    assert needle in done.stderr and "Traceback" not in done.stderr
    assert not list(data_dir.iterdir())  # nothing was set up
