"""Security headers on every answer; a strict Content-Security-Policy on our pages (no inline code)."""


def test_headers_on_pages_and_api(shared_web):
    for path in ("/scans", "/secrets", "/events", "/jobs", "/api/v1/jobs", "/healthz"):
        response = shared_web.get(path)
        assert response.status_code == 200, path
        headers = response.headers
        assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "same-origin"
        csp = headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    page = shared_web.get("/scans").text
    assert "<script>" not in page and " on" + "change=" not in page and "style=" not in page
    assert "content-security-policy" not in shared_web.get("/docs").headers  # Swagger UI brings its own scripts
