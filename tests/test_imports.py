"""graphc's modules import each other without cycles (deferred imports inside functions
count too: a cycle held together by one is still a cycle)."""

import ast
from pathlib import Path

import graphc

ROOT = Path(graphc.__file__).resolve().parent


def _module_name(path):
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path, name, modules):
    """The graphc modules `path` imports, anywhere in the file (``from . import api``
    imports graphc.api; ``from .. import __version__`` the package graphc itself)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("graphc")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if not target.startswith("graphc"):
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in modules else target)
    return found


def import_graph():
    modules = {_module_name(p): p for p in ROOT.rglob("*.py")}
    return {name: {m for m in _imports(path, name, modules) if m in modules and m != name}
            for name, path in modules.items()}


def find_cycle(graph):
    """One import cycle as a list of modules, or None (iterative DFS)."""
    state = {}
    for start in graph:
        if start in state:
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        state[start] = "open"
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = "done"
                stack.pop()
                path.pop()
            elif state.get(child) == "open":
                return path[path.index(child):] + [child]
            elif child not in state:
                state[child] = "open"
                path.append(child)
                stack.append((child, iter(sorted(graph[child]))))
    return None


def test_the_checker_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_graphc_has_no_import_cycles():
    graph = import_graph()
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_every_op_is_in_the_namespace():
    """The op table is the one list: every built-in op is a graphc function of its name,
    and ``graphc.__all__`` names only what exists."""
    import graphc as gc
    from graphc.ops import OPS
    for name, op in OPS.items():
        if op.kind == "custom" or hasattr(op, "formula") or "__d" in name or not op.public:
            continue
        assert name in gc.__all__ and callable(getattr(gc, name)), name
    for name in gc.__all__:
        assert hasattr(gc, name), name
