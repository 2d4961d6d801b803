"""Recon: what a target is, and the scans that map it.

targets.py     targets (domains, networks, URLs, scope rules, scan options, schedule): CRUD, validated
scope.py       what may be contacted: names under the target's domains, addresses in its networks
options.py     scan options, each checked by the stage that reads it; schedule.py: a schedule, as data
scans.py       one row per scan and its job (`TASK`); a target never has two scans at once
pipeline.py    what the job runs: the stages its modules call for, in order (`run_scan`)
stage.py       the plug-in interface of a stage; stages/ holds one file per stage
state.py       what a running scan knows, and its result document
inventory.py   assets a target already knows (imported, or seen): what incremental scans skip
assets.py      what a target's scans found, a tab at a time (filtered, sorted, paged in SQL)
"""

from app.recon import assets, inventory, scans, targets
from app.recon.pipeline import run_scan, summary_line
from app.recon.scope import Scope
from app.recon.stages import default_modules, modules

__all__ = ["Scope", "assets", "default_modules", "inventory", "modules", "run_scan", "scans", "summary_line", "targets"]
