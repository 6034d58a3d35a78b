"""The import rule of docs/architecture.md, checked on the source: layers only import downward,
engines never import a front door or the LSP libraries, and no module import cycle exists."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "companion"

# Lower layers never import higher ones. The LLM engine sits above the registry it calls.
LAYERS: dict[str, int] = {
    "companion.__main__": 4,
    "companion.cli": 4,
    "companion.server": 4,
    "companion.mcp": 4,
    "companion.llm": 3,
    "companion.toolbox": 2,
    "companion.workspace": 1,
    "companion.architecture": 1,
    "companion.evidence": 1,
    "companion.audit": 1,
    "companion.store": 1,
    "companion.case": 1,
    "companion.fleet": 1,
    "companion.fingerprint": 1,
}
FRONT_DOOR_LIBRARIES = ("pygls", "lsprotocol", "mcp")


def module_name(path: Path) -> str:
    """The dotted module name of a file under companion/."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    """The layer of a companion module (0: the shared base)."""
    return next(
        (n for prefix, n in LAYERS.items() if module == prefix or module.startswith(prefix + ".")),
        0,
    )


def _type_checking_lines(tree: ast.Module) -> set[int]:
    """Line numbers inside `if TYPE_CHECKING:` blocks (imports for annotations only)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports(path: Path, modules: frozenset[str] = frozenset()) -> set[str]:
    """Modules a file imports at run time (top level or inside functions).

    `from pkg import sub` counts as importing the submodule only, when `sub` is one of
    `modules`; otherwise as importing `pkg`.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_lines(tree)
    me = module_name(path)
    found: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", 0) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            if node.level:
                pkg = me.split(".")[: -node.level] if path.name != "__init__.py" else me.split(".")
                base = ".".join([*pkg, node.module])
            subs = {f"{base}.{a.name}" for a in node.names} & modules
            found.update(subs)
            if len(subs) < len(node.names):
                found.add(base)
    return found


def graph() -> dict[str, set[str]]:
    """Module -> the companion modules it imports."""
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    known = frozenset(files)
    return {m: {i for i in imports(p, known) if i in files and i != m} for m, p in files.items()}


def test_layers_only_import_downward() -> None:
    bad = [
        f"{m} (layer {layer(m)}) imports {i} (layer {layer(i)})"
        for m, deps in graph().items()
        for i in deps
        if layer(i) > layer(m)
    ]
    assert bad == []


def test_engines_never_import_front_door_libraries() -> None:
    bad = [
        f"{module_name(p)} imports {i}"
        for p in PACKAGE.rglob("*.py")
        if layer(module_name(p)) < 4
        for i in imports(p)
        if i.split(".")[0] in FRONT_DOOR_LIBRARIES
    ]
    assert bad == []


def test_no_import_cycles() -> None:
    g = graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in sorted(g[m]):
            if state.get(d) == 1:
                cycles.append([*path[path.index(d) :], d])
            elif d not in state:
                visit(d, [*path, d])
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m, [m])
    assert cycles == []


def test_no_string_module_registries() -> None:
    offenders = [
        str(p.relative_to(PACKAGE.parent))
        for p in PACKAGE.rglob("*.py")
        if "import_module(" in p.read_text(encoding="utf-8")
    ]
    assert offenders == []
