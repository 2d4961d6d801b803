"""The Secrets page in a real headless Chromium: scan a local web app by URL, watch findings arrive
redacted, reveal one on purpose; hostile markup from the target is shown as text, never run;
filter by triage status with a URL that can be bookmarked."""

import pytest

from tests.support.processes import wait_for
from tests.web.conftest import login, shot

pytestmark = pytest.mark.browser


def test_scan_from_the_page_then_reveal(fallback_web, lab, page):
    site, _, planted = lab
    login(page, fallback_web.url, then="/secrets")
    assert "No secrets found yet" in page.locator("#finding-rows").inner_text()

    page.fill("input[name=url]", "ftp://nope")
    page.evaluate("document.querySelector('input[name=url]').type = 'text'")  # get past the browser's own check
    page.click(".scan-form button")
    page.wait_for_selector("#scan-notice .error")
    assert "only http:// and https://" in page.locator("#scan-notice").inner_text()

    page.fill("input[name=url]", site.url + "/")
    page.click(".scan-form button")
    page.wait_for_selector("#scan-notice a")
    wait_for(lambda: page.locator("tr.finding").count() == len(planted), 30, what="findings in the table")
    table = page.locator("#finding-rows").inner_text()
    for p in planted:
        assert p.value not in table and p.value not in page.content()

    slack = next(p for p in planted if p.rule == "slack-webhook-url")
    row = page.locator("tr.finding", has_text="slack-webhook-url")
    row.locator("summary").click()
    assert "<img src=x onerror=alert(document.domain)>" in row.locator("pre.context").inner_text()
    assert page.locator("#finding-rows img").count() == 0
    shot(page, "secrets-redacted")

    row.locator("button.reveal").click()
    row.locator("code.revealed").wait_for()
    assert row.locator("code.revealed").inner_text() == slack.value
    page.wait_for_timeout(3500)  # a poll would re-render the rows; it pauses while a secret is revealed
    assert row.locator("code.revealed").inner_text() == slack.value
    shot(page, "secrets-revealed")

    # Triaged elsewhere (here: the API): the default view lists open findings only; the filter shows the rest.
    github = next(p for p in planted if p.rule == "github-pat")
    finding_id = int(page.locator("tr.finding", has_text="github-pat").get_attribute("id").removeprefix("finding-"))
    marked = fallback_web.post(f"/api/v1/secrets/findings/{finding_id}/triage", json={"status": "resolved"})
    assert marked.status_code == 200, marked.text
    page.goto(fallback_web.url + "/secrets")
    wait_for(lambda: page.locator("tr.finding").count() == len(planted) - 1, 10, what="open findings only")
    assert "github-pat" not in page.locator("#finding-rows").inner_text()
    page.select_option("select[name=status]", "resolved")
    page.wait_for_url("**/secrets?*status=resolved*")
    wait_for(lambda: page.locator("tr.finding").count() == 1, 10, what="the resolved finding")
    row = page.locator("tr.finding")
    assert "resolved" in row.locator(".triage-cell").inner_text().lower() and github.value not in page.content()
    page.reload()  # the URL is the filter: bookmarkable
    assert page.locator("select[name=status]").input_value() == "resolved"
    assert page.locator("tr.finding").count() == 1
    row.locator("a.rule").click()
    page.wait_for_url(f"{fallback_web.url}/secrets/{finding_id}")


def test_ui_actions_need_the_page(fallback_web):
    # A cross-site form post (no HX-Request header) cannot start scans or reveal secrets.
    assert fallback_web.post("/ui/secrets/scan", data={"url": "http://127.0.0.1/"}).status_code == 403
    assert fallback_web.post("/ui/secrets/findings/1/reveal").status_code == 403
