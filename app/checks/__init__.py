"""Exposure checks: a nuclei-compatible template engine (HTTP first), AssetMon's own checks as templates
with their lab examples beside them, and the filters and statistics of a template set."""
