"""The package's layering, read from its imports (docs/architecture.md).

Every module belongs to a layer; a module may import modules of its own layer and of the layers below,
never above, and no two modules import each other, directly or in a circle (a package's ``__init__``
re-exporting its own modules aside). Imports inside functions count: they run, only later. Imports under
``TYPE_CHECKING`` never run, so they may close a circle, but they may not point up a layer either.
"""

from __future__ import annotations

import sys
import textwrap
from typing import TYPE_CHECKING, Any

import grimp
import pytest

import airflow_credits_provider

if TYPE_CHECKING:
    from pathlib import Path

PACKAGE = "airflow_credits_provider"

#: The layers, lowest first: (name, the top-level modules and packages in it). Keep docs/architecture.md
#: in step with this table.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundation", ("", "errors", "compat", "config", "parsing", "models")),
    ("domain", ("budgets", "partial", "decision", "runway", "arrival", "alerts")),
    ("vendor descriptions", ("vendors",)),
    ("vendor APIs and their emulation", ("client", "sandbox")),
    ("hooks", ("hooks",)),
    ("sql", ("sql",)),
    ("reservations", ("reservations",)),
    ("notifications", ("notifications",)),
    ("tasks", ("triggers", "transfers", "operators", "sensors")),
    ("surfaces", ("ui", "cli")),
    ("entry points", ("get_provider_info",)),
)


def layer_of(module: str, package: str = PACKAGE, layers: Any = LAYERS) -> int:
    """The index of ``module``'s layer, by its first name below the package."""
    top = module.removeprefix(package).lstrip(".").split(".")[0]
    for index, (_, members) in enumerate(layers):
        if top in members:
            return int(index)
    raise AssertionError(
        f"{path_of(module)} is in no layer: give {top or package!r} one in LAYERS "
        "(tests/test_architecture.py) and docs/architecture.md"
    )


def path_of(module: str) -> str:
    """The file of ``module``, relative to the checkout (``airflow_credits_provider/hooks/base.py``)."""
    found = sys.modules.get(module)
    spec_file = getattr(found, "__file__", None)
    if spec_file is None:
        import importlib.util

        spec = importlib.util.find_spec(module)
        spec_file = spec.origin if spec else module.replace(".", "/") + ".py"
    root = module.split(".")[0]
    return str(spec_file)[str(spec_file).rfind(f"/{root}/") + 1 :]


def _where(graph: grimp.ImportGraph, importer: str, imported: str) -> str:
    lines = sorted({d["line_number"] for d in graph.get_import_details(importer=importer, imported=imported)})
    return f"{path_of(importer)}:{','.join(map(str, lines))} imports {path_of(imported)}"


def upward_imports(graph: grimp.ImportGraph, package: str = PACKAGE, layers: Any = LAYERS) -> list[str]:
    """Every import that points from a lower layer to a higher one, naming both files."""
    found = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            low, high = layer_of(importer, package, layers), layer_of(imported, package, layers)
            if high > low:
                found.append(
                    f"{_where(graph, importer, imported)}: {layers[low][0]} may not import {layers[high][0]}"
                )
    return found


def import_circles(graph: grimp.ImportGraph) -> list[str]:
    """One circle per group of modules that import each other, each import named with its file and line.

    A package's ``__init__`` importing its own modules (re-exports) is left out: importing a submodule
    runs its package's ``__init__`` first anyway.
    """
    edges = {
        m: {i for i in graph.find_modules_directly_imported_by(m) if not i.startswith(m + ".")}
        for m in graph.modules
    }
    circles = []
    for group in _strongly_connected(edges):
        if len(group) < 2:
            continue
        start = min(group)
        path = _path_back(edges, group, start)
        steps = [_where(graph, a, b) for a, b in zip(path, path[1:] + path[:1], strict=True)]
        circles.append(" -> ".join(steps))
    return circles


def _strongly_connected(edges: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components."""
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
            groups.append(group)

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return groups


def _path_back(edges: dict[str, set[str]], group: set[str], start: str) -> list[str]:
    """The shortest path inside ``group`` from ``start`` back to itself (its nodes, ``start`` first)."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(edges[node] & group):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return path[::-1]
                if nxt not in previous:
                    previous[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"no circle through {start}")  # pragma: no cover - group is strongly connected


@pytest.fixture(scope="module")
def run_time_imports() -> grimp.ImportGraph:
    """Every import that runs, at import or inside a function (those under TYPE_CHECKING never do)."""
    return grimp.build_graph(PACKAGE, exclude_type_checking_imports=True, cache_dir=None)


@pytest.fixture(scope="module")
def all_imports() -> grimp.ImportGraph:
    return grimp.build_graph(PACKAGE, cache_dir=None)


def test_the_graph_reads_the_whole_package(run_time_imports: grimp.ImportGraph) -> None:
    import pkgutil

    walked = {m.name for m in pkgutil.walk_packages(airflow_credits_provider.__path__, f"{PACKAGE}.")}
    assert walked - run_time_imports.modules == set()
    assert run_time_imports.direct_import_exists(
        importer=f"{PACKAGE}.hooks.base", imported=f"{PACKAGE}.client.transport"
    )


def test_every_module_has_a_layer(run_time_imports: grimp.ImportGraph) -> None:
    # layer_of raises, naming the file, for a module outside every layer.
    layers = {module: LAYERS[layer_of(module)][0] for module in run_time_imports.modules}
    assert layers[f"{PACKAGE}.errors"] == "foundation"
    assert layers[f"{PACKAGE}.cli.console"] == "surfaces"
    assert {name for name, _ in LAYERS} == set(layers.values())  # no layer is empty


def test_no_module_imports_a_higher_layer(all_imports: grimp.ImportGraph) -> None:
    assert upward_imports(all_imports) == []


def test_no_import_circles(run_time_imports: grimp.ImportGraph) -> None:
    assert import_circles(run_time_imports) == []


def test_the_checks_name_both_files_of_a_circle_and_an_upward_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checks themselves, on a small package with one circle and one upward import."""
    root = tmp_path / "layered_sample"
    (root / "low").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "low/__init__.py": "from layered_sample.low.a import A\n",  # a re-export: no circle
        "low/a.py": "A = 1\n\ndef f():\n    from layered_sample.low import b\n    return b\n",
        "low/b.py": "from layered_sample.low.a import A\nfrom layered_sample.high import H\n",
        "high.py": "H = 2\n",
    }
    for name, text in files.items():
        (root / name).write_text(textwrap.dedent(text))
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = grimp.build_graph("layered_sample", cache_dir=None)
    layers = (("low", ("", "low")), ("high", ("high",)))

    assert upward_imports(graph, "layered_sample", layers) == [
        "layered_sample/low/b.py:2 imports layered_sample/high.py: low may not import high"
    ]
    assert import_circles(graph) == [
        "layered_sample/low/a.py:4 imports layered_sample/low/b.py -> "
        "layered_sample/low/b.py:1 imports layered_sample/low/a.py"
    ]
    with pytest.raises(AssertionError, match=r"layered_sample/high.py is in no layer"):
        layer_of("layered_sample.high", "layered_sample", layers[:1])
