"""The registry of job functions.

`@job(...)` registers a plain function once; the same function is then run by a
Celery worker, by the web process's fallback pool, or eagerly in the caller's
process. Arguments are validated from the function's signature before a job
row is written, so bad input never creates a job.

The registry holds what has been registered, nothing more: the job catalogue
(app/tasks.py) registers every job when it is imported, and the entry points
(web app, worker, CLI) import it. The machinery never imports the catalogue.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, get_type_hints

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from app.errors import InvalidArguments, UnknownTask
from app.settings import QUEUES


@dataclass(frozen=True)
class TaskSpec:
    name: str
    func: Callable[..., Any]
    queue: str
    idempotent: bool
    description: str
    arguments: type[BaseModel]
    time_limit: int | None = None  # seconds; None: JOB_SOFT_TIME_LIMIT
    retries: int = 0  # re-runs after a TransientError
    retry_backoff: float = 5.0  # seconds before the first re-run; doubles each time

    def validate(self, kwargs: Any) -> dict[str, Any]:
        if kwargs is None:
            kwargs = {}
        if not isinstance(kwargs, dict):
            raise InvalidArguments(self.name, "the body must be a JSON object of keyword arguments")
        try:
            model = self.arguments.model_validate(kwargs)
        except ValidationError as exc:
            raise InvalidArguments(self.name, exc) from None
        return model.model_dump(mode="json")


_REGISTRY: dict[str, TaskSpec] = {}


def _arguments_model(name: str, func: Callable[..., Any]) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    hints = get_type_hints(func, include_extras=True)
    for param in inspect.signature(func).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"job {name}: *args/**kwargs are not allowed; name every argument")
        annotation = hints.get(param.name, Any)
        default = param.default if param.default is not param.empty else ...
        fields[param.name] = (annotation, default)
    config = ConfigDict(extra="forbid", strict=False)
    return create_model(f"{name.title().replace('_', '').replace('.', '')}Args", __config__=config, **fields)


def register(
    func: Callable[..., Any],
    *,
    name: str,
    queue: str,
    idempotent: bool,
    time_limit: int | None = None,
    retries: int = 0,
    retry_backoff: float = 5.0,
) -> TaskSpec:
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}; queues are {', '.join(QUEUES)}")
    if name in _REGISTRY:
        raise ValueError(f"a task named {name!r} is already registered")
    doc = inspect.getdoc(func) or ""
    spec = TaskSpec(
        name=name,
        func=func,
        queue=queue,
        idempotent=idempotent,
        description=doc.splitlines()[0] if doc else "",
        arguments=_arguments_model(name, func),
        time_limit=time_limit,
        retries=retries,
        retry_backoff=retry_backoff,
    )
    _REGISTRY[name] = spec
    return spec


def get(name: str) -> TaskSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        if not _REGISTRY:  # the entry points import the catalogue; a bare `import app.jobs` has no jobs
            known = ["none in this process (importing app.tasks, the job catalogue, registers them)"]
            raise UnknownTask(name, known) from None
        raise UnknownTask(name, _REGISTRY) from None


def all_tasks() -> list[TaskSpec]:
    return sorted(_REGISTRY.values(), key=lambda spec: spec.name)
