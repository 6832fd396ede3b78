"""The shape of the core package: no import circles, no reaching into other objects' private parts,
modules small enough to read."""

from __future__ import annotations

import ast
from pathlib import Path

import brokersync

PACKAGE = Path(brokersync.__file__).parent
MAX_LINES = 500
# Names that start with "_" but are public API of a library (NamedTuple, SQLAlchemy rows, Enum).
FOREIGN_PUBLIC = {"_fields", "_mapping", "_value_", "_asdict", "_replace", "_name_"}
# A class touching another instance of itself is not reaching into someone else's state.
SAME_CLASS = {
    ("brokersync._vault", "vault._stamp"),  # Vault.from_key_file sets up the Vault it built
    ("brokersync._auth_model", "other._values"),  # Credentials.__eq__ with another Credentials
}


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _owner(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path) -> set[str]:
    """Every brokersync module ``module`` imports, at any level (top, function, TYPE_CHECKING)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str | None] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(_owner(alias.name) for alias in node.names if alias.name.startswith("brokersync"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            if base.startswith("brokersync"):
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    found.add(full if full in MODULES else _owner(base))
    found.discard(None)
    found.discard(module)
    return {m for m in found if m is not None}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_the_core_has_no_import_circles() -> None:
    graph = {module: _imports(module, path) for module, path in MODULES.items()}
    assert graph["brokersync._engine._api"], "the walker found no imports: it is broken"
    assert _cycles(graph) == []


def test_the_walker_sees_a_circle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_or_touches_another_modules_private_names() -> None:
    offences = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("brokersync"):
                offences += [
                    f"{module}: imports {a.name}"
                    for a in node.names
                    if a.name.startswith("_")
                    and not a.name.startswith("__")
                    and f"{node.module}.{a.name}" not in MODULES  # a private module is not a member
                ]
            elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                owner = node.value
                if isinstance(owner, ast.Name) and owner.id in {"self", "cls"}:
                    continue
                if isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name) and owner.func.id == "super":
                    continue
                if node.attr in FOREIGN_PUBLIC or (module, ast.unparse(node)) in SAME_CLASS:
                    continue
                offences.append(f"{module}:{node.lineno}: .{node.attr}")
    assert offences == []


def test_every_core_module_is_small() -> None:
    sizes = {module: len(path.read_text().splitlines()) for module, path in MODULES.items()}
    assert {m: n for m, n in sizes.items() if n >= MAX_LINES} == {}


def test_test_support_modules_have_names_of_their_own() -> None:
    # Test folders share one sys.path (pytest's importlib mode puts each on it): two helper modules
    # of one name (two plugins' ``engine_support``) make one of them import the other's, depending on
    # which folder was collected first.
    repo = PACKAGE.parents[2]
    folders = [repo / "tests", *sorted((repo / "plugins").glob("*/tests"))]
    seen: dict[str, list[str]] = {}
    for folder in folders:
        for path in folder.rglob("*.py"):
            if path.name.startswith("test_") or path.name in ("conftest.py", "__init__.py"):
                continue
            if "packages" in path.relative_to(repo).parts:  # installed test distributions, not on sys.path
                continue
            seen.setdefault(path.stem, []).append(str(path.relative_to(repo)))
    shared = {name: paths for name, paths in seen.items() if len(paths) > 1}
    assert not shared, f"rename these test helper modules so each name is unique: {shared}"
