"""The import layers (DESIGN §3), checked on the source: a lower layer never imports an upper one, the
engine never imports the TUI, the app never imports the trainer, and no two modules import each other
through a cycle. Imports inside functions count (they are dependencies too); ``if TYPE_CHECKING:``
imports do not (they never run).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# bdc_assistant's parts, lowest first; a part may import its own layer and the layers below it
LAYERS: list[set[str]] = [
    {"errors", "types", "paths", "resources", "pysource", "atomic", "logs", "machine", "__init__"},
    {"config", "keys", "store"},
    {"sandbox", "models", "encoder", "evaluation", "disen"},
    {"backends", "deep"},
    {"solver", "bundles"},
    {"tui", "serve", "acp_agent"},
    {"commands", "cli", "__main__"},
]
LAYER_OF = {part: i for i, parts in enumerate(LAYERS) for part in parts}
ENGINE = {part for part in LAYER_OF if LAYER_OF[part] < LAYER_OF["tui"]}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return isinstance(test, ast.Name | ast.Attribute) and ast.unparse(test).endswith("TYPE_CHECKING")


def imports_of(path: Path) -> set[str]:
    """Modules ``path`` imports at run time (absolute names, as precise as the import statement)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if _type_checking_only(child):
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    base = ".".join([*anchor, *([child.module] if child.module else [])])
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in child.names)  # `from . import x`
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def _sources() -> list[Path]:
    return sorted([*(ROOT / "bdc_assistant").rglob("*.py"), *(ROOT / "trainer").rglob("*.py")])


def _graph() -> dict[str, set[str]]:
    """Module → the modules of ours it imports (names that are modules, not names inside them)."""
    ours = {module_name(p) for p in _sources()}
    return {
        module_name(p): {m for m in imports_of(p) if m in ours and m != module_name(p)} for p in _sources()
    }


def part_of(module: str) -> str:
    """``bdc_assistant.deep.runner`` → ``deep``; ``bdc_assistant`` → ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    out = []
    for module, deps in sorted(graph.items()):
        for dep in sorted(deps):
            if module.startswith("trainer"):
                if dep.startswith("bdc_assistant") and LAYER_OF[part_of(dep)] >= LAYER_OF["tui"]:
                    out.append(f"{module} (trainer) imports {dep} (the app's surface)")
                continue
            if dep.startswith("trainer"):
                out.append(f"{module} imports {dep}: the app never imports the trainer")
            elif part_of(module) in ENGINE and part_of(dep) == "tui":
                out.append(f"{module} imports {dep}: the engine never imports the TUI")
            elif LAYER_OF[part_of(dep)] > LAYER_OF[part_of(module)]:
                out.append(f"{module} (layer {LAYER_OF[part_of(module)]}) imports {dep} (a higher layer)")
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

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
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return out


def test_every_part_has_a_layer() -> None:
    parts = {part_of(m) for m in _graph() if m.startswith("bdc_assistant")}
    assert parts <= set(LAYER_OF), (
        f"give these a layer in tests/test_layers.py: {sorted(parts - set(LAYER_OF))}"
    )


def test_lower_layers_never_import_upper_ones() -> None:
    assert layer_violations(_graph()) == []


def test_no_import_cycles() -> None:
    assert cycles(_graph()) == []


@pytest.mark.parametrize(
    ("module", "dep", "why"),
    [
        ("bdc_assistant.deep.runner", "bdc_assistant.tui.engine", "the engine never imports the TUI"),
        ("bdc_assistant.tui.app", "trainer.runner", "the app never imports the trainer"),
        ("bdc_assistant.sandbox.checkers", "bdc_assistant.solver.session", "a higher layer"),
    ],
)
def test_the_checks_catch_a_wrong_import(module: str, dep: str, why: str) -> None:
    graph = _graph()
    graph[module] = graph[module] | {dep}
    assert any(why in v for v in layer_violations(graph)), why
    graph[dep] = graph[dep] | {module}
    assert any(module in c and dep in c for c in cycles(graph))
