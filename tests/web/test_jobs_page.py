"""The Jobs page in a real headless Chromium (Debian's), driven by Playwright."""

import pytest

from tests.support.processes import wait_for
from tests.web.conftest import login
from tests.web.conftest import shot as _shot

pytestmark = pytest.mark.browser


def test_jobs_page_live_updates_cancel_and_requeue(web, worker, page):
    wait_for(lambda: web.health()["mode"] == "celery", 15, what="celery mode")
    login(page, web.url, then="/jobs")
    assert "celery" in page.locator("#mode-badge").inner_text()

    quick = web.trigger("diag_sleep", seconds=3, steps=6)["job_id"]
    row = page.locator(f"#job-{quick}")
    row.wait_for(timeout=10_000)  # appears without a reload
    page.wait_for_selector(f"#job-{quick}[data-status=running]", timeout=15_000)
    _shot(page, "jobs-running")
    page.wait_for_selector(f"#job-{quick}[data-status=succeeded]", timeout=30_000)
    assert "100%" in row.inner_text()

    slow = web.trigger("diag_sleep", seconds=60, steps=600)["job_id"]
    page.wait_for_selector(f"#job-{slow}[data-status=running]", timeout=15_000)
    page.locator(f"#job-{slow} button.cancel").click()
    page.wait_for_selector(f"#job-{slow}[data-status=cancelled]", timeout=20_000)
    assert web.job(slow)["status"] == "cancelled"

    page.locator(f"#job-{slow} button.requeue").click()
    wait_for(lambda: web.job(slow)["runs"] == 2, 10, what="requeued")
    page.wait_for_selector(f"#job-{slow}[data-status=running]", timeout=20_000)
    page.locator(f"#job-{slow} button.cancel").click()
    page.wait_for_selector(f"#job-{slow}[data-status=cancelled]", timeout=20_000)
    _shot(page, "jobs-after-cancel")


def test_fallback_badge_and_hostile_text_is_escaped(fallback_web, page):
    payload = "<img src=x onerror=window.__pwned=1><script>window.__pwned=2</script>"
    job = fallback_web.trigger("diag_fail", message=payload)["job_id"]
    fallback_web.wait_job(job)
    login(page, fallback_web.url, then="/jobs")
    badge = page.locator("#mode-badge").inner_text()
    assert "fallback" in badge and "not reachable" in badge
    assert payload in page.locator(f"#job-{job} .message").inner_text()
    assert page.evaluate("window.__pwned") is None
    _shot(page, "jobs-fallback")


def test_filter_by_state_is_a_bookmarkable_url(fallback_web, page):
    ok = fallback_web.trigger("health_check")["job_id"]
    bad = fallback_web.trigger("diag_fail")["job_id"]
    fallback_web.wait_job(ok)
    fallback_web.wait_job(bad)
    login(page, fallback_web.url, then="/jobs")
    page.select_option("select[name=status]", "failed")
    page.wait_for_url("**/jobs?status=failed*", timeout=10_000)
    assert page.locator(f"#job-{bad}").count() == 1 and page.locator(f"#job-{ok}").count() == 0
    page.reload()
    assert page.locator(f"#job-{bad}").count() == 1 and page.locator(f"#job-{ok}").count() == 0


def test_trigger_a_task_and_open_a_job(fallback_web, page):
    login(page, fallback_web.url, then="/jobs")
    assert "default" in page.locator(".queues").inner_text()
    page.select_option(".trigger select[name=task]", "diag_sleep")
    page.fill(".trigger input[name=kwargs]", "{not json")
    page.click(".trigger button")
    page.wait_for_selector("#trigger-notice .error")
    assert "not JSON" in page.locator("#trigger-notice").inner_text()
    page.fill(".trigger input[name=kwargs]", '{"seconds": -1}')
    page.click(".trigger button")
    # A selector, not wait_for_function: our CSP forbids the eval that a string predicate needs.
    page.wait_for_selector("#trigger-notice:has-text('greater than or equal')")
    page.fill(".trigger input[name=kwargs]", '{"seconds": 0.1, "steps": 1}')
    page.click(".trigger button")
    page.wait_for_selector("#trigger-notice a")
    page.click("#trigger-notice a")
    page.wait_for_selector("h1")
    wait_for(lambda: (page.reload() or True) and "succeeded" in page.locator("main").inner_text(), 20, what="job page")
    assert '"slept": 0.1' in page.locator("main").inner_text()


def test_ui_actions_require_the_htmx_header(fallback_web):
    job = fallback_web.trigger("diag_sleep", seconds=20, steps=200)["job_id"]
    response = fallback_web.post(f"/ui/jobs/{job}/cancel")  # a plain cross-site form post
    assert response.status_code == 403
    assert fallback_web.job(job)["cancel_requested"] is False
    fallback_web.post(f"/api/v1/jobs/{job}/cancel")
