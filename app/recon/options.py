"""Scan options, checked: the same keys in the API, the CLI and a target's `scan_options`.

`modules` chooses the stages; every other option belongs to the stage that reads it and is checked by
that stage's own rule (app/recon/stages/), so a new stage brings its options with it.
"""

from __future__ import annotations

from typing import Any

from app.errors import ScanError
from app.recon import stages


def check_modules(modules: Any) -> list[str]:
    known = stages.modules()
    if modules is None:
        return list(stages.default_modules())
    if isinstance(modules, str):
        modules = [m.strip() for m in modules.split(",") if m.strip()]
    if not isinstance(modules, list) or not modules or not all(isinstance(m, str) for m in modules):
        raise ScanError(f"'modules' must be a non-empty list of: {', '.join(known)}")
    unknown = [m for m in modules if m not in known]
    if unknown:
        raise ScanError(f"unknown module(s) {', '.join(unknown)}; modules are {', '.join(known)}")
    return [m for m in known if m in modules]  # stage order, no duplicates


def option_keys() -> tuple[str, ...]:
    return ("modules", *stages.options())


def check_options(options: Any) -> dict[str, Any]:
    """The options as stored; raises ScanError naming the first wrong one. A None value means "not given"."""
    if not isinstance(options, dict):
        raise ScanError("'options' must be a JSON object")
    rules = stages.options()
    unknown = sorted(set(options) - set(option_keys()))
    if unknown:
        raise ScanError(f"unknown option(s) {', '.join(unknown)}; options are {', '.join(option_keys())}")
    clean: dict[str, Any] = {}
    if options.get("modules") is not None:
        clean["modules"] = check_modules(options["modules"])
    for name, option in rules.items():
        if options.get(name) is not None:
            clean[name] = option.check(options[name])
    return clean
