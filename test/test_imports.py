"""The package's imports point one way: no module of ``refseg_ros`` imports itself back through others
(a cycle), and none imports test code. Read from the source with ``ast`` (nothing is imported), so
imports inside functions count too: they close a cycle at run time just the same, only later.
"""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "refseg_ros"
#: module names a test directory defines (``conftest``, ``test_node``, ``node_process``, ...)
TEST_MODULES = {"test", "tests", "helpers", "conftest"} | {
    p.stem for d in (REPO / "test", REPO / "test" / "helpers") if d.is_dir() for p in d.glob("*.py")}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _nodes(tree: ast.AST):
    """Every node except those under ``if TYPE_CHECKING:`` (never run)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                stack.extend(child.orelse)
            else:
                stack.append(child)


def lazy_exports(path: Path) -> dict[str, str]:
    """A package ``__init__``'s ``_EXPORTS = {"Name": "submodule"}`` (imported on first access)."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_EXPORTS"
                                                for t in node.targets):
            return ast.literal_eval(node.value)
    return {}


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, int]]:
    """(imported name, line) for every import in the file, relative ones resolved."""
    is_package = path.name == "__init__.py"
    found = []
    for node in _nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[:len(base) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, node.lineno))
            exports = lazy_exports(modules[target]) if target in modules and \
                modules[target].name == "__init__.py" else {}
            for alias in node.names:
                if f"{target}.{alias.name}" in modules:  # ``from pkg import submodule``
                    found.append((f"{target}.{alias.name}", node.lineno))
                elif alias.name in exports:  # a lazy export runs its submodule
                    found.append((f"{target}.{exports[alias.name]}", node.lineno))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == \
                "import_module" and node.args and isinstance(node.args[0], ast.Constant) and \
                isinstance(node.args[0].value, str):
            found.append((node.args[0].value, node.lineno))
    return found


def import_graph() -> tuple[dict[str, set[str]], dict[tuple[str, str], int], list[str]]:
    """(module -> package modules it imports, (module, imported) -> line, imports of test code)."""
    modules = package_modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    lines: dict[tuple[str, str], int] = {}
    test_imports = []
    for name, path in modules.items():
        for target, line in imports_of(name, path, modules):
            where = f"{path.relative_to(REPO)}:{line}"
            if target.split(".")[0] in TEST_MODULES:
                test_imports.append(f"{where} imports {target}")
            if target in modules and target != name:
                graph[name].add(target)
                lines.setdefault((name, target), line)
    return graph, lines, test_imports


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
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
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_cycle_in(graph, set(c)) for c in components]


def _cycle_in(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest cycle through the component's first module (breadth first, inside the component)."""
    start = min(component)
    parent: dict[str, str] = {start: start}
    frontier = [start]
    while frontier:
        following = []
        for v in frontier:
            for w in sorted(graph[v] & component):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return path[::-1] + [start]
                if w not in parent:
                    parent[w] = v
                    following.append(w)
        frontier = following
    return sorted(component)


def _test_tree_paths() -> list[str]:
    """``Path(...) / "test" / "helpers"``-style joins in package code: running test files by path."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
                for side in (node.left, node.right):
                    if isinstance(side, ast.Constant) and side.value in ("test", "tests", "helpers"):
                        found.append(f"{path.relative_to(REPO)}:{node.lineno} joins a path into {side.value}/")
    return found


def test_the_graph_sees_relative_function_level_and_lazy_imports():
    """The walk itself: a known function-level import and a lazy package export are edges."""
    graph, _, _ = import_graph()
    assert "refseg_ros.model" in graph and "refseg_ros.model.predictor" in graph
    # cli modules import their work inside ``run`` (function level)
    assert any(t.startswith("refseg_ros.model") for t in graph["refseg_ros.cli.predict"])
    exports = lazy_exports(PACKAGE / "model" / "__init__.py")
    assert exports.get("build_model") == "build"


def test_no_import_cycle_in_the_package():
    graph, lines, _ = import_graph()
    found = cycles(graph)
    report = []
    for cycle in found:
        steps = [f"{a} ({Path(*a.split('.'))}.py:{lines[(a, b)]}) -> {b}"
                 for a, b in zip(cycle, cycle[1:]) if (a, b) in lines]
        report.append("cycle: " + " -> ".join(cycle) + "\n    " + "\n    ".join(steps))
    assert not found, "import cycles in refseg_ros:\n" + "\n".join(report)


def test_package_code_never_imports_test_code():
    _, _, test_imports = import_graph()
    found = test_imports + _test_tree_paths()
    assert not found, "refseg_ros must not use test code:\n" + "\n".join(found)


def test_utils_sits_below_everything_else():
    """``refseg_ros.utils`` imports nothing from the package except other ``utils`` modules."""
    graph, lines, _ = import_graph()
    above = [f"{m}:{lines[(m, t)]} imports {t}" for m, targets in sorted(graph.items())
             if m.startswith("refseg_ros.utils") for t in sorted(targets)
             if t not in ("refseg_ros", "refseg_ros.utils") and not t.startswith("refseg_ros.utils.")]
    assert not above, "utils/ must stay at the bottom of the import graph:\n" + "\n".join(above)
