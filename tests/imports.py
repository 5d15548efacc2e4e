"""The project's import graph, read from the source with `ast` (nothing is imported): which project module imports
which, including the imports inside functions (they run too, just later). Used by tests/test_layout.py (no cycles,
no layer reaching up) and by the model-archive test (the container's code bundle holds every module its entry
point needs)."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

# Top-level folders of project code besides the packages (folders with __init__.py); tests/ is not project code.
EXTRA_DIRS = ("bench",)
SKIP_DIRS = ("tests",)


def project_modules(root: Path) -> dict[str, Path]:
    """{dotted module name: file} for the repository's own code at `root`."""
    modules = {path.stem: path for path in root.glob("*.py")}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if folder.name in SKIP_DIRS or not ((folder / "__init__.py").is_file() or folder.name in EXTRA_DIRS):
            continue
        for path in folder.rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            if "__pycache__" in parts:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _imported_names(module: str, path: Path, tree: ast.AST) -> Iterable[str]:
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            yield name
            yield from (f"{name}.{alias.name}" for alias in node.names)  # `from pkg import module`


def import_graph(root: Path) -> dict[str, set[str]]:
    """{module: the project modules it imports}, for every project module under `root`."""
    modules = project_modules(root)

    def owner(name: str) -> str | None:  # the module a dotted name lives in (`core.labels.LABELS` -> core.labels)
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets = {owner(name) for name in _imported_names(module, path, tree)}
        graph[module] = {t for t in targets if t and t != module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles: each strongly connected set of two or more modules, sorted (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
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
    return sorted(found)


def closure(graph: dict[str, set[str]], start: str) -> set[str]:
    """`start` and every project module importing it runs, directly or not: the modules it imports and the
    packages above each (`import core.labels` runs core/__init__.py first)."""
    seen, todo = set(), [start]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parents = [module.rsplit(".", depth)[0] for depth in range(1, module.count(".") + 1)]
        todo.extend(m for m in [*graph.get(module, ()), *parents] if m in graph)
    return seen


def module_file(module: str, root: Path) -> str:
    """The repository path of a module (`core.labels` -> core/labels.py, `core` -> core/__init__.py)."""
    path = project_modules(root)[module]
    return path.relative_to(root).as_posix()
