"""The house rules that keep the package easy to find one's way in (docs/layout.md): no import
circles, no module over 600 lines, at most 12 modules at the top level, and lower floors never
import upward. Imports inside functions count (a lazy import is still a dependency); those under
``if TYPE_CHECKING:`` do not."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "soundnet_cli"
MAX_LINES = 600
MAX_TOP_MODULES = 12

#: Floors, lowest first: a module may import its own floor's modules (without circles) and those
#: of lower floors, never a higher one. Keys are module names below soundnet_cli; the longest
#: matching prefix decides.
FLOORS = {
    "_version": 0, "errors": 0, "files": 0,
    "audio": 1, "datasets": 1, "provenance": 1, "model": 1, "device": 1, "shards.partition": 1,
    "shards.status": 1,
    "weights": 2,
    "runtime": 3,
    "tagging": 4, "review": 4, "svm": 4, "extract": 4, "units": 4, "training": 4, "distill": 4,
    "plot": 4,
    "shards": 5, "api": 5, "hear": 5,
    "cli": 6, "__main__": 6,
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _resolve(name: str, modules: dict[str, Path]) -> str:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Modules of the package that ``name`` imports (names relative to soundnet_cli)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("soundnet_cli."):
                    found.add(_resolve(alias.name.removeprefix("soundnet_cli."), modules))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[:len(base) - (node.level - 1)]
                full = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("soundnet_cli"):
                full = node.module.removeprefix("soundnet_cli").lstrip(".")
            else:
                return
            for alias in node.names:
                candidate = f"{full}.{alias.name}" if full else alias.name
                found.add(_resolve(candidate if candidate in modules else full, modules))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    found.discard(name)
    found.discard("")  # the top package's lazy face
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def test_no_import_circles(graph) -> None:
    assert _cycles(graph) == []


def test_the_circle_finder_finds_circles() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_over_600_lines() -> None:
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_top_level_holds_at_most_12_modules() -> None:
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_MODULES, top


def _floor(name: str) -> int:
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in FLOORS:
            return FLOORS[".".join(parts[:n])]
    raise AssertionError(f"soundnet_cli.{name} has no floor in tests/test_layout.py FLOORS")


def test_lower_floors_never_import_upward(graph) -> None:
    upward = sorted(f"{a} -> {b}" for a, targets in graph.items() if a for b in targets
                    if _floor(b) > _floor(a))
    assert upward == []
