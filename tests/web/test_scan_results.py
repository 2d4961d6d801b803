"""The scan results fragment with what a target can put in it: check findings and takeover evidence are
shown, and every value from the target is escaped."""

from __future__ import annotations

from app.web.templating import templates

HOSTILE = "<script>alert(1)</script>"


def _render(result: dict) -> str:
    return templates.env.get_template("_scan_results.html").render(scan={"result": result}, oob=False)


def test_check_findings_and_takeover_evidence_are_shown_escaped():
    html = _render(
        {
            "checks": [
                {
                    "check": "git-config-exposed",
                    "name": "Git repository configuration exposed",
                    "severity": "medium",
                    "url": f"http://www.lab.test/.git/config?{HOSTILE}",
                    "status": 200,
                    "extracted": [HOSTILE],
                    "tags": ["vcs"],
                }
            ],
            "subdomains": [
                {
                    "name": "docs.lab.test",
                    "addresses": ["127.0.0.1"],
                    "sources": ["ct"],
                    "takeover": "GitHub Pages",
                    "takeover_evidence": {
                        "confidence": "confirmed",
                        "method": "http",
                        "cname": "lab-docs.github.io",
                        "url": "https://docs.lab.test/",
                        "status": 404,
                        "matched": ["status 404", "body: there isn't a github pages site here."],
                    },
                }
            ],
        }
    )
    assert "Checks (1)" in html and 'class="sev-medium"' in html and "git-config-exposed" in html
    assert "confirmed by http" in html and "lab-docs.github.io" in html and "answered 404" in html
    assert HOSTILE not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_a_scan_without_checks_has_no_checks_table():
    assert "Checks (" not in _render({"subdomains": [], "services": []})
