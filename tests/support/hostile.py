"""A hostile web service for the UI's escaping tests: markup in its title, headers, script names,
JavaScript and certificate names. Any of it that runs in our pages opens a dialog (the browser
fixtures fail on that) or shows up unescaped in the HTML."""

from __future__ import annotations

from tests.support.tlslab import LabSite, make_cert

PAYLOADS = {
    "title": "<script>alert('title')</script>",
    "server": "<img src=x onerror=alert('server')>",
    "cert": "<svg onload=alert('cert')>.evil.test",
    "script": "x\"><img src=y onerror=alert('js')>.js",
}


def hostile_site(host: str = "127.0.0.16") -> LabSite:
    site = LabSite(host, make_cert([PAYLOADS["cert"], host], self_signed=True))
    script = PAYLOADS["script"].replace('"', "%22").replace("<", "%3C").replace(">", "%3E").replace(" ", "%20")
    site.add(
        "/",
        f"<html><head><title>{PAYLOADS['title']}</title></head>"
        f'<body><script src="/static/{script}"></script></body></html>',
        content_type="text/html",
        server=PAYLOADS["server"],
        x_powered_by="<b>bold</b>",
    )
    # A script whose text is markup too (and a fake, obviously made-up key to find in it).
    body = "var note = '</script><script>alert(\"inline\")</script>';\nvar k = 'AKIA" + "FAKE" * 4 + "';\n"
    site.add(f"/static/{script}", body, content_type="application/javascript")
    return site
