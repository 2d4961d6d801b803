"""The shape of app/ is checked, not hoped for: the import contract holds, no module imports one that imports
it back (at the top of a file or inside a function), imports sit at the top of files, and app/ itself holds
only its entry points and base modules."""

from __future__ import annotations

import ast
import subprocess

import grimp

from tests.support.processes import ROOT, VENV_BIN

APP = ROOT / "app"
# Imports that may sit inside a function: heavy optional dependencies only, each with a comment saying so.
# (file, module) pairs imported inside a function on purpose, each with its reason.
ALLOWED_INNER_IMPORTS: set[tuple[str, str]] = {
    # `secrets scan` in a CI pipeline loads the HTTP stack only when --verify asks for live checks.
    ("app/cli/secrets.py", "app.secrets.verify"),
}
TOP_LEVEL_MODULES = {
    "__init__.py",
    "main.py",
    "worker.py",
    "tasks.py",
    "settings.py",
    "db.py",
    "models.py",
    "errors.py",
}


def test_the_import_contract_holds():
    done = subprocess.run(
        [str(VENV_BIN / "lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_module_imports_one_that_imports_it_back():
    # grimp reads every import statement, those inside functions included.
    graph = grimp.build_graph("app", cache_dir=None)
    edges = {module: set(graph.find_modules_directly_imported_by(module)) for module in graph.modules}
    assert len(edges) > 100  # the whole package was read
    assert _cycles(edges) == []


def test_imports_sit_at_the_top_of_files():
    inner = []
    for path in sorted(APP.rglob("*.py")):
        if "migrations/versions" in path.as_posix():
            continue
        tree = ast.parse(path.read_text(), str(path))
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    name = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                    where = (path.relative_to(ROOT).as_posix(), str(name))
                    if where not in ALLOWED_INNER_IMPORTS:
                        inner.append(f"{where[0]}:{node.lineno} imports {name} inside {function.name}()")
    assert inner == []


def test_app_holds_entry_points_and_base_modules_the_rest_is_in_capability_folders():
    files = {path.name for path in APP.glob("*.py")}
    assert files <= TOP_LEVEL_MODULES, files - TOP_LEVEL_MODULES
    assert len(files) <= 8
    packages = {path.name for path in APP.iterdir() if (path / "__init__.py").exists()}
    assert packages == {
        "accounts",
        "checks",
        "cli",
        "jobs",
        "migrations",
        "monitor",
        "net",
        "recon",
        "scanners",
        "secrets",
        "web",
    }
