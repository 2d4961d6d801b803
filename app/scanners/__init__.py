"""Recon modules: DNS, certificate transparency, port scanning, HTTP probing. Each is plain async code
with timeouts, retries and a concurrency limit, configured from settings and overridable per call."""
