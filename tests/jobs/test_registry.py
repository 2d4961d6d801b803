import pytest

from app import tasks  # noqa: F401  (the job catalogue: importing it registers every job)
from app.errors import InvalidArguments, UnknownTask
from app.jobs import registry


def test_known_tasks_are_registered():
    names = {spec.name for spec in registry.all_tasks()}
    assert {"health_check", "diag_sleep", "diag_cpu", "diag_fail"} <= names


def test_unknown_task_names_the_known_ones():
    with pytest.raises(UnknownTask) as info:
        registry.get("rm_rf")
    assert "health_check" in str(info.value)


def test_arguments_are_validated_from_the_signature():
    spec = registry.get("diag_sleep")
    assert spec.validate({"seconds": "2"}) == {"seconds": 2.0, "steps": 10}
    with pytest.raises(InvalidArguments, match="seconds"):
        spec.validate({"seconds": -1})
    with pytest.raises(InvalidArguments, match="Extra inputs"):
        spec.validate({"bogus": 1})
    with pytest.raises(InvalidArguments, match="JSON object"):
        spec.validate([1, 2])


def test_plain_call_skips_the_job_system():
    from app.tasks import diag_sleep, health_check

    assert diag_sleep(seconds=0, steps=1) == {"slept": 0}
    assert health_check()["status"] == "ok"
