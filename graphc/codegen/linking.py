"""How a generated module names the functions it does not define itself.

Shared-runtime functions (``_dot``, the op table's helpers, the interpreter) and custom
ops' own implementations are placeholders in the module (``_dot = None``), listed in
``RUNTIME`` and ``OP_FUNCTIONS``; ``runtime.link`` fills them in after import, and
``runtime.standalone`` replaces the runtime placeholder by the definitions."""

from __future__ import annotations

import re

#: The runtime placeholder line (``_a = _b = None  # linked from graphc's runtime ...``).
RUNTIME_PLACEHOLDER = re.compile(
    r"^(?P<names>_\w+(?: = _\w+)*) = None  # linked from graphc's runtime.*$", re.MULTILINE)


def called_names(lines, known):
    """The functions among `known` (the shared runtime's) that generated `lines` call.
    Input names never start with an underscore (they are renamed ``arg_...``), so a
    match is a call of a runtime function."""
    return frozenset(re.findall(r"\b(_\w+)\(", "\n".join(lines))) & frozenset(known)


def placeholder(names):
    """The line a generated module holds instead of the runtime functions it calls."""
    names = sorted(set(names))
    if not names:
        return ""
    return (f"RUNTIME = {tuple(names)!r}\n"
            f"{' = '.join(names)} = None  # linked from graphc's runtime (export inlines them)\n")


def op_functions_placeholder(linked):
    """The lines naming the ops whose own implementations the module calls (custom ops:
    a Numba implementation, or the NumPy one through objmode), linked after import."""
    if not linked:
        return ""
    return (f"OP_FUNCTIONS = {dict(sorted(linked.items()))!r}\n"
            f"{' = '.join(sorted(linked))} = None  # linked from the op table\n")


__all__ = ["RUNTIME_PLACEHOLDER", "called_names", "op_functions_placeholder", "placeholder"]
