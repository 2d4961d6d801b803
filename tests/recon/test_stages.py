"""Recon stages as plug-ins: the modules, options, order, progress shares and slicing come from the stage
files themselves, and adding a stage is adding a file (the README's example stage, run for real)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from app.errors import ScanError
from app.jobs import slices
from app.recon import stages
from app.recon.options import check_modules, check_options, option_keys
from app.recon.stage import ScanRun
from app.settings import get_settings
from tests.conftest import UNREACHABLE_REDIS
from tests.support.dnslab import DNSLab
from tests.support.processes import ROOT, VENV_BIN, app_env


def names(plan) -> list[str]:
    return [stage.name for stage in plan]


def test_the_stages_declare_the_modules_options_and_order():
    assert names(stages.all_stages()) == ["discover", "resolve", "dns", "ports", "http", "js", "checks"]
    assert stages.modules() == ("subdomains", "dns", "ports", "http", "js", "checks")
    assert stages.default_modules() == ("subdomains", "dns", "ports", "http", "js")  # checks: asked for
    assert option_keys() == (
        "modules",
        "ct_url",
        "resolvers",
        "incremental",
        "ports",
        "http_ports",
        "check_tags",
        "check_severity",
    )
    assert check_modules(None) == list(stages.default_modules())
    with pytest.raises(ScanError, match="unknown module"):
        check_modules(["nmap"])


def test_a_plan_has_what_the_modules_need_in_order():
    assert names(stages.plan([])) == ["resolve"]  # resolve always runs
    assert names(stages.plan(["ports"])) == ["resolve", "ports"]
    assert names(stages.plan(["js"])) == ["resolve", "http", "js"]  # js needs http's services
    assert names(stages.plan(["js", "subdomains", "ports"])) == ["discover", "resolve", "ports", "http", "js"]


def test_options_are_checked_by_the_stage_that_reads_them():
    clean = check_options({"ports": "top100", "http_ports": [8443, 80, 80], "resolvers": ["127.0.0.1:53"]})
    assert clean == {"ports": "top100", "http_ports": [80, 8443], "resolvers": ["127.0.0.1:53"]}
    for bad, message in (({"ports": "1-99999"}, "ports:"), ({"incremental": "yes"}, "true or false")):
        with pytest.raises(ScanError, match=message):
            check_options(bad)


def test_progress_shares_follow_the_weights_of_the_stages_that_run(settings_env):
    class Row:  # what ScanRun reads of a scan row
        id, target, target_id, modules, options = "x" * 32, "lab.test", None, ["ports"], {}
        spec = {"domains": ["lab.test"], "cidrs": [], "urls": [], "scope": {}}

    run = ScanRun(Row(), get_settings(), stages.plan(["ports"]))  # resolve (15) + ports (30)
    assert run._spans == {"resolve": (0.0, pytest.approx(100 / 3)), "ports": (pytest.approx(100 / 3), 200 / 3)}


def test_stages_that_can_be_sliced_are_registered_for_every_worker():
    stages.all_stages()
    assert "ports" in slices._RUNNERS


EXAMPLE = re.compile(r"```python\n(# app/recon/stages/ptr\.py\n.*?)```", re.DOTALL)

SCAN = """
import json, sys
from app import tasks  # the job catalogue, as the entry points load it
from app.db import ensure_migrated
from app.recon import modules, scans, targets
ensure_migrated()
print(json.dumps(modules()))
target = targets.create({"name": "lab", "domains": ["lab.test"], "cidrs": ["127.0.0.7"]})
scan, _ = scans.create("lab", ["ptr"], {"resolvers": [sys.argv[1]]})
print(json.dumps(scans.to_dict(scans.get(scan.id))))
"""


def test_adding_a_stage_is_adding_a_file(tmp_path):
    """The README's example stage, dropped into a copy of app/, becomes a module a scan can choose, and a
    scan with it runs it (against a loopback DNS server with a PTR record)."""
    example = EXAMPLE.search((ROOT / "README.md").read_text())
    assert example, "the README shows an example stage starting with '# app/recon/stages/ptr.py'"
    shutil.copytree(ROOT / "app", tmp_path / "app", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "app" / "recon" / "stages" / "ptr.py").write_text(example.group(1))
    lab = DNSLab("lab.test", {"@": {"A": ["127.0.0.7"]}, "7.0.0.127.in-addr.arpa.": {"PTR": ["mail.lab.test"]}})
    with lab:
        done = subprocess.run(
            [str(VENV_BIN / "python"), "-c", SCAN, lab.address],
            cwd=tmp_path,  # this copy of app/ is the one imported
            env=app_env(tmp_path / "data", UNREACHABLE_REDIS),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    listed, scan = (json.loads(line) for line in done.stdout.splitlines()[-2:])
    assert listed == ["subdomains", "dns", "ports", "ptr", "http", "js", "checks"]  # after resolve; ties go by name
    assert scan["status"] == "succeeded", scan
    found = {s["name"]: s["sources"] for s in scan["result"]["subdomains"]}
    assert found == {"lab.test": ["input"], "mail.lab.test": ["ptr"]}
    assert scan["result"]["hosts"] == [{"host": "127.0.0.7", "names": ["lab.test", "mail.lab.test"], "open_ports": []}]
