"""The import structure of `bot/` and `actions/`: no cycles, no imports hidden in functions.

The graph is read from the source with `ast`, never by importing it, so a cycle
shows up here even when Python happens to survive it at run time. Imports under
`if TYPE_CHECKING:` are for the type checker only and are not edges; every other
import is, wherever it is written. Only the command-line entry points may import
the project's modules inside a function (to start fast: `kefu users list` need
not load Rasa).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "actions")

# Command-line entry points: they import what a command needs when it runs.
LAZY_IMPORTS_ALLOWED = frozenset(
    {
        "bot.cli",
        "bot.accounts.cli",
        "bot.customer_data.cli",
        "bot.retrain.cli",
    }
)


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int
    in_function: bool


def modules(root: Path) -> dict[str, Path]:
    """Every module of the project's packages under `root`, by dotted name."""
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _statements(
    body: list[ast.stmt], in_function: bool
) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """The import statements that run when `body` does (TYPE_CHECKING blocks never do)."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, in_function
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _statements(node.orelse, in_function)
        else:
            nested = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            for field in ("body", "orelse", "finalbody", "handlers", "cases"):
                for child in getattr(node, field, []):
                    if isinstance(child, ast.stmt):
                        yield from _statements([child], nested)
                    elif isinstance(child, ast.ExceptHandler | ast.match_case):
                        yield from _statements(child.body, nested)


def imports(root: Path) -> list[Import]:
    """Every import of a project module by a project module, resolved to the module it loads."""
    known = modules(root)
    found = []
    for name, path in known.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node, in_function in _statements(tree.body, in_function=False):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    package = name.split(".") if is_package else name.split(".")[:-1]
                    package = package[: len(package) - (node.level - 1)]
                    base = ".".join([*package, base] if base else package)
                # `from pkg import sub` loads the module pkg.sub when there is one.
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                    for alias in node.names
                ]
            for target in dict.fromkeys(targets):
                while target and target not in known:  # `import a.b.C` names a module a.b
                    target = target.rpartition(".")[0]
                edge = Import(name, target, node.lineno, in_function)
                if target and target != name and edge not in found:
                    found.append(edge)
    return found


def find_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected group of modules (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return [_cycle_in(group, edges) for group in groups]


def _cycle_in(group: set[str], edges: dict[str, set[str]]) -> list[str]:
    """A shortest cycle through the group's first module (breadth-first back to it)."""
    start = min(group)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(edges.get(node, set()) & group):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [*reversed(path), start]
                if nxt not in came_from:
                    came_from[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"no cycle in {group}")


def import_cycles(root: Path) -> list[list[str]]:
    edges: dict[str, set[str]] = {}
    for edge in imports(root):
        edges.setdefault(edge.importer, set()).add(edge.imported)
    return find_cycles(edges)


def hidden_imports(root: Path) -> list[Import]:
    """Imports of project modules inside function bodies, outside the command-line entry points."""
    return [
        edge
        for edge in imports(root)
        if edge.in_function and edge.importer not in LAZY_IMPORTS_ALLOWED
    ]


def test_the_import_graph_has_no_cycle() -> None:
    cycles = import_cycles(ROOT)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_module_hides_an_import_of_the_project_inside_a_function() -> None:
    hidden = hidden_imports(ROOT)
    assert not hidden, "imports inside functions:\n" + "\n".join(
        f"{modules(ROOT)[edge.importer].relative_to(ROOT)}:{edge.line} imports {edge.imported}"
        for edge in hidden
    )


def test_the_walk_sees_cycles_lazy_imports_and_type_checking_blocks(tmp_path: Path) -> None:
    """The walk itself: a cycle through a function's import counts, a TYPE_CHECKING one not."""
    package = tmp_path / "bot"
    (package / "sub").mkdir(parents=True)
    (tmp_path / "actions").mkdir()
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from bot.sub import b\n")
    (package / "sub" / "b.py").write_text("def f():\n    from ..a import x\n")
    (package / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from bot.d import D\n"
    )
    (package / "d.py").write_text("import bot.c\n")
    (package / "cli.py").write_text("def main():\n    import bot.d\n")

    assert import_cycles(tmp_path) == [["bot.a", "bot.sub.b", "bot.a"]]
    assert [(e.importer, e.imported, e.line) for e in hidden_imports(tmp_path)] == [
        ("bot.sub.b", "bot.a", 2)
    ]


def test_the_actions_load_without_the_server() -> None:
    """An action server of its own imports `actions`: nothing it loads may reach the app."""
    edges: dict[str, set[str]] = {}
    for edge in imports(ROOT):
        edges.setdefault(edge.importer, set()).add(edge.imported)
    reached: set[str] = set()
    todo = [name for name in modules(ROOT) if name.split(".")[0] == "actions"]
    while todo:
        name = todo.pop()
        if name not in reached:
            reached.add(name)
            todo += edges.get(name, set())
    assert not reached & {"bot.app", "bot.app_keys"}, sorted(reached)
