"""The twin's layout follows the APIs it imitates: one module per API, named like goldenpath/gcp/,
a leaf module for what they share, and no import cycle (nor a deferred import to hide one)."""

from __future__ import annotations

import ast
from pathlib import Path

TWIN = Path(__file__).resolve().parents[2] / "twin"
GCP = Path(__file__).resolve().parents[2] / "goldenpath" / "gcp"


def _twin_imports(path: Path) -> tuple[set[str], list[str]]:
    """(twin modules imported at run time at module level, twin imports made inside functions)."""
    tree = ast.parse(path.read_text())
    top: set[str] = set()
    deferred: list[str] = []

    def names(node: ast.AST) -> list[str]:
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "twin":
                return [f"twin.{a.name}" for a in node.names]
            if node.module.startswith("twin."):
                return [node.module]
        if isinstance(node, ast.Import):
            return [a.name for a in node.names if a.name.startswith("twin.")]
        return []

    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue  # annotations only: no run-time edge
        top.update(names(node))
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            for inner in ast.walk(node):
                if not isinstance(inner, (ast.Import, ast.ImportFrom)):
                    continue  # (only imports name modules; and only they carry a lineno for the message)
                deferred += [f"{path.name}:{inner.lineno} imports {n}" for n in names(inner)]
    return top, deferred


def _graph() -> dict[str, set[str]]:
    graph = {}
    for path in TWIN.glob("*.py"):
        if path.name == "__main__.py":
            continue  # the entry point imports what a command needs, when it runs
        top, _ = _twin_imports(path)
        graph[f"twin.{path.stem}"] = {m for m in top if m != "twin.scenarios"}
    return graph


def test_the_twin_has_no_import_cycle() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(dep):] + [dep]))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_no_twin_module_hides_a_cycle_in_a_deferred_import() -> None:
    deferred = [d for p in TWIN.glob("*.py") if p.name != "__main__.py" for d in _twin_imports(p)[1]]
    assert deferred == []


def test_the_shared_leaf_imports_nothing_of_the_twin() -> None:
    assert _graph()["twin.store"] == set()


def test_one_twin_module_per_google_api_named_like_the_gates_adapters() -> None:
    apis = {p.stem for p in GCP.glob("*.py")} - {"__init__", "session"}
    assert apis <= {p.stem for p in TWIN.glob("*.py")}, "the gate has an adapter with no twin module of that name"
    graph = _graph()
    for api in apis:
        # An API module builds on the leaf and on what that API itself reads, never on the composer
        # or on a face.
        assert not graph[f"twin.{api}"] & {"twin.world", "twin.server", "twin.grpcserver", "twin.dataplane"}, api
