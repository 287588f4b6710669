"""Names in generated code: stable and readable (``v12`` for node 12's value, ``e12``
for its element in a loop, ``n0`` for a dynamic size, ``k0`` for a constant array), and
constants as source text of the right dtype."""

from __future__ import annotations

import keyword
import math
import re

import numpy as np

_RESERVED = {"np", "math", "numba", "fn", "check_args", "INPUTS", "OUTPUTS", "work"}
_GENERATED = re.compile(r"^(v|e|n|i|k|c|s|p|l|a|out)\d+[a-z]?$|^_")


class Names:
    """Stable, readable names: ``v12`` for node 12's value, ``e12`` for its element in a
    loop, ``n0`` for a dynamic size, ``k0`` for a constant array, ``c0`` for a scalar
    constant of a type Python literals do not have (``c0 = np.float32(1.0)``)."""

    def __init__(self, plan, inputs):
        self.plan = plan
        self.index = {}
        for node in plan.order:
            self.index[node] = len(self.index)
        self.inputs = {x: (x.name if x.name not in _RESERVED and not _GENERATED.match(x.name)
                           and not keyword.iskeyword(x.name) else f"arg_{x.name}")
                       for x in inputs}
        self.consts = {}
        self.dims = {}
        self.typed = {}            # (dtype name, literal) -> name of a typed local

    def value(self, node):
        if node.is_input:
            return self.inputs[node]
        if node.is_const:
            if node.shape == ():
                return self.constant(node.value, node.dtype)
            return self.consts.setdefault(node, f"k{len(self.consts)}")
        return f"v{self.index[node]}"

    def constant(self, value, dtype):
        """A scalar constant of `dtype` in generated code.  Python literals are float64,
        int64 or bool in Numba; a constant of another dtype is a local set once at the
        kernel's top (``c0 = np.float32(1.0)``), so that float32 arithmetic stays float32
        (a float64 literal would promote every element to float64 and back)."""
        dtype = np.dtype(dtype)
        text = literal(np.asarray(value, dtype=dtype))
        if dtype in LITERAL_DTYPES:
            return text
        return self.typed.setdefault((dtype.name, text), f"c{len(self.typed)}")

    def typed_lines(self):
        """The statements that set the typed constants, for the kernel's top."""
        return [f"{name} = np.{dtype}({text})" for (dtype, text), name in self.typed.items()]

    def element(self, node):
        return f"e{self.index[node]}"

    def dim(self, d):
        if isinstance(d, int):
            return str(d)
        return self.dims.setdefault(d, f"n{len(self.dims)}")

    def shape(self, shape):
        dims = [self.dim(d) for d in shape]
        return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


#: The dtypes Python literals have in Numba.
LITERAL_DTYPES = (np.dtype(np.float64), np.dtype(np.int64), np.dtype(np.bool_))


def literal(value):
    v = float(value)
    if math.isnan(v):
        return "np.nan"
    if v in (float("inf"), float("-inf")):
        return "np.inf" if v > 0 else "-np.inf"
    if np.dtype(value.dtype) == np.bool_:
        return repr(bool(value))
    if np.dtype(value.dtype).kind in "iu":
        return repr(int(value))
    return repr(v)


def typed(text, dtype):
    """Literal source `text` as a value of `dtype` (a conversion unless Python's literal
    has that type)."""
    return text if np.dtype(dtype) in LITERAL_DTYPES else f"np.{np.dtype(dtype).name}({text})"
