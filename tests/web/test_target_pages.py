"""The Targets pages through a real web server: the add form, a target's tabs, exports; one browser run."""

from __future__ import annotations

import csv
import io
import re

import pytest
from playwright.sync_api import expect

from tests.recon.test_assets import XSS, seed
from tests.web.conftest import login, shot

HX = {"HX-Request": "true"}


@pytest.fixture
def site(fallback_web, settings_env):
    """The web server, and this process pointed at its database (to seed what scans would have found)."""
    return fallback_web


def _create(web, **body) -> int:
    response = web.post("/api/v1/targets", json={"name": "acme", "domains": ["example.com"]} | body)
    assert response.status_code == 201, response.text
    return response.json()["target_id"]


def _rows(html: str) -> list[str]:
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [r for r in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S) if "empty" not in r]


def test_add_form_shows_each_error_beside_its_field(site):
    form = {
        "name": "",
        "domains": "example.com\nnot a domain!",
        "cidrs": "10.0.0.0/8",
        "schedule": "whenever",
        "http_ports": "80, web",
        "modules": ["subdomains", "dns"],
    }
    refused = site.post("/ui/targets", data=form, headers=HX)
    assert refused.status_code == 422
    html = refused.text
    assert "<html" not in html and 'id="target-form"' in html  # the form alone, for htmx to swap
    assert re.search(r'id="new-name-error"[^>]*>[^<]*name.{0,10} is required', html)
    assert 'id="new-cidrs-error"' in html and "the limit is /16" in html
    assert 'id="new-http_ports-error"' in html
    assert "example.com\nnot a domain!</textarea>" in html  # what was typed is kept
    form |= {"name": "acme", "domains": "example.com, shop.example.com", "cidrs": "", "http_ports": ""}
    refused = site.post("/ui/targets", data=form, headers=HX)
    assert refused.status_code == 422 and 'id="new-schedule-error"' in refused.text
    assert 'id="new-name-error"' not in refused.text

    created = site.post("/ui/targets", data=form | {"schedule": "1d"}, headers=HX)
    assert created.status_code == 200, created.text
    target_id = int(created.headers["HX-Redirect"].rsplit("/", 1)[1])
    stored = site.get(f"/api/v1/targets/{target_id}").json()
    assert stored["domains"] == ["example.com", "shop.example.com"]
    assert stored["schedule"] == {"every_seconds": 86400}
    assert stored["scan_options"] == {"modules": ["subdomains", "dns"]}

    again = site.post("/ui/targets", data=form | {"schedule": ""}, headers=HX)
    assert again.status_code == 422 and "exists already" in again.text
    # Without htmx: a plain form post is answered with the whole page, or a redirect.
    plain = site.post("/ui/targets", data=form | {"name": "acme-2", "schedule": ""}, follow_redirects=False)
    assert plain.status_code == 303 and plain.headers["location"].startswith("/targets/")
    listing = site.get("/targets").text
    assert "acme-2" in listing and "Add a target" in listing

    edited = site.post(f"/ui/targets/{target_id}", data=form | {"schedule": "0 3 * * *"}, headers=HX)
    assert edited.status_code == 200 and edited.headers["HX-Redirect"] == f"/targets/{target_id}"
    assert site.get(f"/api/v1/targets/{target_id}").json()["schedule"] == {"cron": "0 3 * * *"}
    deleted = site.post(f"/ui/targets/{target_id}/delete", headers=HX)
    assert deleted.headers["HX-Redirect"] == "/targets"
    assert site.get(f"/targets/{target_id}").status_code == 404


def test_tabs_filter_sort_and_pages_are_urls(site):
    target_id = _create(site, cidrs=["10.0.0.0/24"])
    seed(target_id)
    page = site.get(f"/targets/{target_id}?tab=ports")
    assert page.status_code == 200 and "<html" in page.text
    assert len(_rows(page.text)) == 50 and "1–50 of 120" in page.text
    assert 'aria-current="page">Hosts &amp; ports' in page.text
    assert f'href="/targets/{target_id}?tab=ports&amp;page=3"' in page.text  # the pager's links are plain URLs

    last = site.get(f"/targets/{target_id}?tab=ports&page=3").text
    assert len(_rows(last)) == 20 and "101–120 of 120" in last
    assert "101–120 of 120" in site.get(f"/targets/{target_id}?tab=ports&page=999").text

    by_port = site.get(f"/targets/{target_id}?tab=ports&sort=port&dir=desc&size=25").text
    assert all(">8080<" in row for row in _rows(by_port)) and len(_rows(by_port)) == 25
    filtered = site.get(f"/targets/{target_id}?tab=ports&q=10.0.0.1:").text
    assert len(_rows(filtered)) == 4 and "1–4 of 4" in filtered

    # htmx asks for the table region only, and is told which URL to show.
    region = site.get(
        f"/targets/{target_id}?tab=ports&sort=port&dir=asc&page=2", headers=HX | {"HX-Target": "target-table"}
    )
    assert "<html" not in region.text and region.text.lstrip().startswith('<div id="target-table"')
    assert region.headers["HX-Push-Url"] == f"/targets/{target_id}?tab=ports&sort=port&page=2"
    restore = site.get(
        f"/targets/{target_id}?tab=ports",
        headers=HX | {"HX-Target": "target-table", "HX-History-Restore-Request": "true"},
    )
    assert "<html" in restore.text  # the back button after a cache miss needs the whole page

    gone = site.get(f"/targets/{target_id}?tab=subdomains&state=gone").text
    assert len(_rows(gone)) == 5 and all(">gone<" in row for row in _rows(gone))

    services = site.get(f"/targets/{target_id}?tab=services").text
    assert XSS not in services and "&lt;script&gt;alert(&#39;title&#39;)&lt;/script&gt;" in services
    assert "<img src=x" not in services and "2031-01-02" in services and "-123" in services

    secrets = site.get(f"/targets/{target_id}?tab=secrets").text
    assert len(_rows(secrets)) == 2 and re.search(r'href="/secrets/\d+"', secrets)
    assert "AKIAREALVALUEDONOTSHOW" not in secrets and "elsewhere.test" not in secrets
    events = site.get(f"/targets/{target_id}?tab=events").text
    assert len(_rows(events)) == 3 and "scan.baseline number 0" in events
    scans = site.get(f"/targets/{target_id}?tab=scans").text
    assert f'href="/scans/{"a" * 32}"' in scans and "succeeded" in scans

    assert site.get(f"/targets/{target_id}?tab=passwords").status_code == 404
    assert site.get("/targets/999").status_code == 404
    assert "120" in site.get("/targets").text  # the list shows what each target has


def test_exports_stream_every_row_safely(site):
    target_id = _create(site)
    seed(target_id)
    response = site.get(f"/targets/{target_id}/export.csv?tab=ports&sort=port&dir=desc")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert 'filename="acme-ports.csv"' in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0][:2] == ["host", "port"] and len(rows) == 121 and rows[1][1] == "8080"
    assert len(list(csv.reader(io.StringIO(site.get(f"/targets/{target_id}/export.csv?tab=ports&q=:22").text)))) == 31

    services = list(csv.DictReader(io.StringIO(site.get(f"/targets/{target_id}/export.csv?tab=services").text)))
    titles = {s["url"]: s["title"] for s in services}
    assert titles["http://n011.example.com/"] == '\'=HYPERLINK("http://evil")'  # no formula in a spreadsheet
    assert titles["https://n010.example.com/"] == XSS

    data = site.get(f"/targets/{target_id}/export.json?tab=subdomains&state=all").json()
    assert (data["target"], data["tab"], data["state"], len(data["rows"])) == ("acme", "subdomains", "all", 30)
    assert data["rows"][0]["name"] == "n000.example.com" and data["rows"][0]["addresses"] == ["10.0.0.0"]
    secrets = site.get(f"/targets/{target_id}/export.json?tab=secrets").text
    assert "AKIAREALVALUEDONOTSHOW" not in secrets
    assert site.get(f"/targets/{target_id}/export.xlsx").status_code == 404


@pytest.mark.browser
def test_add_a_target_and_browse_its_tabs(site, page):
    login(page, site.url, then="/targets")
    page.fill("#new-name", "shop")
    page.fill("#new-domains", "not a domain!")
    page.click("#target-form button[type=submit]")
    page.wait_for_selector("#new-domains-error")
    assert "not a valid domain name" in page.locator("#new-domains-error").inner_text()
    shot(page, "targets")

    page.fill("#new-domains", "example.com")
    page.click("#target-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/targets/\d+$"))
    target_id = int(page.url.rsplit("/", 1)[1])
    seed(target_id, subdomains=80, ports=400)
    page.reload()
    assert "1–50 of 75" in page.locator(".pager").inner_text()

    page.click("nav.tabs >> text=Hosts & ports")
    page.wait_for_url(f"**/targets/{target_id}?tab=ports")
    page.wait_for_selector("text=1–50 of 400")
    page.click("th >> text=Port")  # sort by port
    page.wait_for_selector("th[aria-sort] >> text=Port")
    assert page.url.endswith("?tab=ports&sort=port")
    page.wait_for_load_state()  # htmx is listening (should a click above have been a plain navigation)
    # The sort swapped the whole table, filter form included: type once htmx has settled the new form
    # (on a loaded machine, keystrokes that come before it are not seen by htmx).
    page.wait_for_selector(".htmx-request, .htmx-swapping, .htmx-settling", state="detached")
    page.fill("#table-filter", ":443")
    page.wait_for_selector("text=1–50 of 100")
    expect(page.locator("#table-filter")).to_be_focused()  # typing was not interrupted by the swap
    page.click(".pager >> text=Last »")
    page.wait_for_selector("text=51–100 of 100")

    page.go_back()
    page.wait_for_selector("text=1–50 of 100")
    assert "page" not in page.url.split("?", 1)[1]
    page.click("nav.tabs >> text=Web services")
    page.wait_for_selector("td.title")
    assert XSS in page.locator("td.title").all_inner_texts()  # shown as text, never run
    # Last: Playwright's full-page screenshot leaves style="" on inputs, which a later htmx settle
    # would copy (and the CSP refuse).
    shot(page, "target-detail")
