"""One error hierarchy: every error AssetMon raises on purpose is defined in app/errors.py and carries
the HTTP status it maps to; the web app has one handler for all of them (app/main.py)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import app
from app import errors
from app.errors import AssetMonError
from app.main import app as web_app

# Exceptions defined elsewhere, on purpose, and why they are not AssetMon errors.
ELSEWHERE = {
    # httpx reports it as a failed connection, like any other connect error (app/net/pinning.py).
    "app.net.pinning.Refused": "an httpcore.ConnectError",
}


def _app_modules():
    for info in pkgutil.walk_packages(app.__path__, "app."):
        if ".migrations" not in info.name:
            yield importlib.import_module(info.name)


def test_every_error_is_in_errors_py():
    strays = []
    for module in _app_modules():
        for name, value in vars(module).items():
            if not (inspect.isclass(value) and issubclass(value, BaseException)) or value.__module__ != module.__name__:
                continue
            where = f"{module.__name__}.{name}"
            # Private control flow inside one module (never raised to a caller) may stay where it is used.
            if module.__name__ != "app.errors" and not name.startswith("_") and where not in ELSEWHERE:
                strays.append(where)
    assert not strays, f"errors outside app/errors.py: {strays}"


def test_every_error_maps_to_a_status():
    expected = {
        "InvalidInput": 422,
        "NotFound": 404,
        "Conflict": 409,
        "TooManyAttempts": 429,
        "Unavailable": 503,
        "SourceError": 502,
        "ScanBusy": 409,
        "TargetNotFound": 404,
        "JobStateError": 409,
        "UnknownTask": 404,
        "LastAdmin": 409,
        "DatabaseError": 503,
    }
    assert {name: getattr(errors, name).status_code for name in expected} == expected
    classes = [c for c in vars(errors).values() if inspect.isclass(c) and issubclass(c, BaseException)]
    assert len(classes) > 40 and all(issubclass(c, AssetMonError) for c in classes)
    # The branch that gives the status comes first among the bases: a TargetNotFound is a 404.
    for cls in classes:
        branch = next((b for b in cls.__mro__[1:] if b.__module__ == "app.errors" and "status_code" in vars(b)), None)
        if "status_code" not in vars(cls) and branch is not None:
            assert cls.status_code == branch.status_code, cls
    # Validators raise them as ValueError, lookups as LookupError.
    assert issubclass(errors.ScanError, ValueError) and issubclass(errors.ScanNotFound, LookupError)


def test_one_handler_for_all_of_them():
    handlers = web_app.exception_handlers
    ours = [cls for cls in handlers if inspect.isclass(cls) and issubclass(cls, AssetMonError)]
    assert ours == [AssetMonError]
