"""The recon stages, one file each, read from this folder: every module here that defines `STAGE` is one.

From their declarations (app/recon/stage.py) come, in this one place:

    all_stages()     every stage, in the order they run
    modules()        the scan modules a user may choose ("subdomains", "dns", "ports", ...)
    plan(modules)    the stages a scan with these modules runs: theirs, what they need, in order
    options()        every scan option a stage reads, with its check

Stages that can be cut into slices are registered with the job machinery (app/jobs/slices.py) here, so
that any worker can run a slice of a scan that another worker owns.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from graphlib import CycleError, TopologicalSorter

from app.jobs import slices
from app.recon.stage import Option, Stage


@cache
def all_stages() -> tuple[Stage, ...]:
    """Every stage, in run order: a stage runs after what it `needs` and what it runs `after`; stages
    with nothing between them run in name order, so the order never depends on the file system."""
    found: dict[str, Stage] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        # The plug-in mechanism: each file of this folder is imported by name, like a Celery `include`.
        stage = getattr(importlib.import_module(f"{__name__}.{info.name}"), "STAGE", None)
        if not isinstance(stage, Stage):
            continue
        if stage.name in found:
            raise ValueError(f"two recon stages are named {stage.name!r}")
        found[stage.name] = stage
    for stage in found.values():
        unknown = [other for other in (*stage.needs, *stage.after) if other not in found]
        if unknown:
            raise ValueError(f"recon stage {stage.name!r} refers to unknown stage(s) {', '.join(unknown)}")
    order = TopologicalSorter({s.name: set(s.needs) | set(s.after) for s in found.values()})
    try:
        order.prepare()
    except CycleError as exc:
        raise ValueError(f"recon stages depend on each other in a circle: {exc.args[1]}") from None
    ordered: list[Stage] = []
    while order.is_active():
        ready = sorted(order.get_ready())
        ordered += [found[name] for name in ready]
        order.done(*ready)
    for stage in ordered:
        if stage.slice is not None:
            slices.register(stage.name, stage.slice)
    return tuple(ordered)


def modules() -> tuple[str, ...]:
    """The scan modules, in stage order."""
    return tuple(stage.module for stage in all_stages() if stage.module)


def default_modules() -> tuple[str, ...]:
    """The modules of a scan that names none: all but those a stage keeps for scans that ask for it."""
    return tuple(stage.module for stage in all_stages() if stage.module and stage.default)


def options() -> dict[str, Option]:
    """Every scan option any stage reads, in stage order."""
    return {name: option for stage in all_stages() for name, option in stage.options.items()}


def plan(chosen: list[str]) -> list[Stage]:
    """The stages a scan with the `chosen` modules runs, in order: those that always run, those of its
    modules, and every stage one of them needs."""
    by_name = {stage.name: stage for stage in all_stages()}
    wanted = {stage.name for stage in all_stages() if stage.module is None or stage.module in chosen}
    pending = list(wanted)
    while pending:
        for needed in by_name[pending.pop()].needs:
            if needed not in wanted:
                wanted.add(needed)
                pending.append(needed)
    return [stage for stage in all_stages() if stage.name in wanted]
