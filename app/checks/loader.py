"""Template sets: AssetMon's own checks and the folders a user names, filtered, with what was skipped and why.

Loading never fails on a template: a file that is too big, not YAML, malformed or in need of a feature this
engine lacks is counted under its reason (`assetmon checks templates --stats`) and the rest load.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from app.checks.model import SEVERITIES, Template
from app.checks.parse import parse_template
from app.errors import InvalidInput, TemplateError, UnsupportedTemplate

BUILTIN_TEMPLATES = Path(__file__).with_name("templates")
MAX_TEMPLATE_BYTES = 256 << 10
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: 10,000 templates in seconds
_ALIAS = re.compile(r"(?m)(?:^|[\s\[,{:-])\*[A-Za-z0-9_\-]")
_SKIP_DIRS = {".git", ".github", "node_modules", "__pycache__"}


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str
    detail: str


@dataclass
class TemplateSet:
    templates: list[Template] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    files: int = 0

    def stats(self) -> dict[str, object]:
        return {
            "files": self.files,
            "loaded": len(self.templates),
            "skipped": len(self.skipped),
            "skipped_by_reason": dict(Counter(s.reason for s in self.skipped).most_common()),
        }


@dataclass(frozen=True)
class Filters:
    ids: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    severities: frozenset[str] = frozenset()
    authors: frozenset[str] = frozenset()
    exclude_ids: frozenset[str] = frozenset()
    exclude_tags: frozenset[str] = frozenset()

    @classmethod
    def from_lists(
        cls,
        ids: Iterable[str] = (),
        tags: Iterable[str] = (),
        severities: Iterable[str] = (),
        authors: Iterable[str] = (),
        exclude_ids: Iterable[str] = (),
        exclude_tags: Iterable[str] = (),
    ) -> Filters:
        """From user input (each item may be comma-separated); an unknown severity is refused."""

        def split(values: Iterable[str]) -> frozenset[str]:
            return frozenset(v.strip().lower() for item in values for v in item.split(",") if v.strip())

        wanted = split(severities)
        unknown = wanted - set(SEVERITIES)
        if unknown:
            raise InvalidInput(f"severity must be among {', '.join(SEVERITIES)}; not {', '.join(sorted(unknown))}")
        return cls(split(ids), split(tags), wanted, split(authors), split(exclude_ids), split(exclude_tags))

    def keep(self, template: Template) -> bool:
        tid, info = template.id.lower(), template.info
        tags = set(info.tags)
        if tid in self.exclude_ids or tags & self.exclude_tags:
            return False
        if self.ids and tid not in self.ids:
            return False
        if self.tags and not tags & self.tags:
            return False
        if self.severities and info.severity not in self.severities:
            return False
        return not self.authors or bool({a.lower() for a in info.authors} & self.authors)


def template_files(folder: Path) -> list[Path]:
    """*.yaml / *.yml under a folder, in a stable order; symlinks are not followed (no loops)."""
    found: list[Path] = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith("."))
        found.extend(Path(root) / name for name in sorted(files) if name.endswith((".yaml", ".yml")))
    return found


def read_template(path: Path) -> Template:
    """One file -> Template; raises TemplateError (or UnsupportedTemplate) with a reason."""
    try:
        if path.stat().st_size > MAX_TEMPLATE_BYTES:
            raise UnsupportedTemplate("too-big", f"larger than {MAX_TEMPLATE_BYTES >> 10} KiB")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TemplateError(f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise TemplateError("not UTF-8 text") from None
    # YAML aliases let a few lines expand into gigabytes once walked ("billion laughs"): templates do
    # not need them.
    if "&" in text and _ALIAS.search(text):
        raise UnsupportedTemplate("yaml-aliases", "anchors and aliases are not read")
    try:
        data = yaml.load(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise TemplateError(f"not valid YAML{where}") from None
    except RecursionError:
        raise TemplateError("nested too deeply") from None
    return parse_template(data, path)


def _reason(exc: TemplateError) -> str:
    return exc.reason if isinstance(exc, UnsupportedTemplate) else "invalid"


def load_templates(
    folders: Iterable[Path] = (), *, builtin: bool = True, filters: Filters | None = None
) -> TemplateSet:
    """AssetMon's own checks (unless builtin is False) and every template under `folders`, filtered.
    A later template with the id of an earlier one is skipped as a duplicate."""
    result = TemplateSet()
    seen: set[str] = set()
    sources = ([BUILTIN_TEMPLATES] if builtin else []) + [Path(f) for f in folders]
    for folder in sources:
        files = [folder] if folder.is_file() else template_files(folder)
        for path in files:
            result.files += 1
            try:
                template = read_template(path)
            except TemplateError as exc:
                result.skipped.append(Skipped(str(path), _reason(exc), str(exc)))
                continue
            if template.id in seen:
                result.skipped.append(Skipped(str(path), "duplicate-id", template.id))
                continue
            seen.add(template.id)
            if filters is None or filters.keep(template):
                result.templates.append(template)
    return result
