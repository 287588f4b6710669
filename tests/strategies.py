"""Hypothesis strategies for random well-typed graphs: every elementwise op, random
shapes with broadcasting and dynamic dimensions, reductions over random axes, matrix
products of compatible shapes.  A drawn case knows how to build itself on any backend
(graph inputs or tape tensors) and carries input values away from kinks and poles."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

import graphc as gc
from graphc.ops import OPS

def _float_elementwise(arity):
    """The op table's public elementwise ops of `arity` that map floats to floats and
    take no parameters: the fuzzer draws every one of them, so a new op is fuzzed the
    day it is added (with its default input range unless DOMAIN says otherwise)."""
    found = []
    for name, op in OPS.items():
        if (op.kind != "elementwise" or op.arity != arity or not op.public or op.params
                or name in NOT_FUZZED):
            continue
        try:
            if op.dtype([np.dtype(np.float64)] * arity) != np.float64:
                continue                        # comparisons: bool results
        except TypeError:
            continue                            # bitwise ops: no floats
        found.append(name)
    return sorted(found)


#: Elementwise ops the fuzzer leaves out, and why (the op table's cases check them).
NOT_FUZZED = {"stop_gradient": "its gradient is zero by definition, which finite "
                               "differences do not see"}

#: Where an op's default input range, (-2, 2), is off its domain or near a pole, how
#: the fuzzer feeds it: (build, range).  Steps (floor, ceil, round, the zero-gradient
#: floor_divide) keep the default: a draw lands on a jump with probability ~1e-6.
DOMAIN = {
    "log": (lambda a: gc.log(gc.square(a) + 0.5), (-2, 2)),
    "log1p": (lambda a: gc.log1p(gc.square(a)), (-2, 2)),
    "log2": (lambda a: gc.log2(gc.square(a) + 0.5), (-2, 2)),
    "log10": (lambda a: gc.log10(gc.square(a) + 0.5), (-2, 2)),
    "sqrt": (lambda a: gc.sqrt(gc.square(a) + 0.3), (-2, 2)),
    "sin": (gc.sin, (-3, 3)), "cos": (gc.cos, (-3, 3)), "tanh": (gc.tanh, (-3, 3)),
    "arctan": (gc.arctan, (-3, 3)), "tan": (gc.tan, (-1, 1)),
    "sigmoid": (gc.sigmoid, (-4, 4)), "softplus": (gc.softplus, (-4, 4)),
    "sign": (lambda a: gc.sign(a) * a, (-2, 2)),       # sign alone has no gradient to check
    "div": lambda a, b: a / (gc.square(b) + 1.0),
    "pow": lambda a, b: (gc.square(a) + 0.5) ** gc.tanh(b),
    "arctan2": lambda a, b: gc.arctan2(a, gc.square(b) + 0.5),
    "mod": lambda a, b: a % (gc.square(b) + 0.5),
    "floor_divide": lambda a, b: (a // (gc.square(b) + 0.5)) * b,
}

# unary ops with the input range on which they are smooth: every float op of the
# table, and composites that mix ops
UNARY = {name: DOMAIN.get(name, (getattr(gc, name), (-2, 2))) for name in _float_elementwise(1)}
UNARY.update({
    "clip": (lambda a: gc.clip(a, -0.7, 0.9), (-2, 2)),
    "where of a mask": (lambda a: gc.where(a > 0.2, a, -a * 0.5), (-2, 2)),
})
BINARY = {name: DOMAIN.get(name, getattr(gc, name)) for name in _float_elementwise(2)}
BINARY.update({
    "where": lambda a, b: gc.where(a > b, a * b, a - b),
    "where of masks": lambda a, b: gc.where(((a > b) & (a > 0.0)) | ~(b < -0.5) ^ (a < 0.3),
                                            a, b),
})
REDUCE = {"sum": gc.sum, "mean": gc.mean, "max": gc.max, "min": gc.min,
          "logsumexp": gc.logsumexp,
          # reductions of bool masks: a count (an integer, not a bool) and a fraction,
          # used in float arithmetic; the thresholds are away from the values' kinks
          "count*max": lambda a, axis=None, keepdims=False: (
              gc.sum(a > 0.1, axis=axis, keepdims=keepdims) * gc.max(a, axis, keepdims)),
          "fraction*sum": lambda a, axis=None, keepdims=False: (
              gc.mean(a < 0.2, axis=axis, keepdims=keepdims) * gc.sum(a, axis, keepdims) + 1.0)}
# ops that keep the rank but move or normalise along an axis: (build, output shape)
STRUCTURE = {
    "transpose": (lambda a, axis: gc.transpose(a), lambda shape, axis: shape[::-1]),
    # axes rotated by `axis`: every rotation, including the identity (0, 1) of a matrix
    "rotate axes": (lambda a, axis: gc.transpose(a, tuple(int(i) for i in
                                                          np.roll(np.arange(a.ndim), axis))),
                    lambda shape, axis: tuple(np.roll(np.array(shape, dtype=object), axis))),
    "softmax": (lambda a, axis: gc.softmax(a, axis=axis), lambda shape, axis: shape),
    "log_softmax": (lambda a, axis: gc.log_softmax(a, axis=axis), lambda shape, axis: shape),
    "expand_dims": (lambda a, axis: gc.expand_dims(a, axis % (a.ndim + 1)),
                    lambda shape, axis: shape[:axis % (len(shape) + 1)] + (1,)
                    + shape[axis % (len(shape) + 1):]),
}


@dataclass
class Case:
    shapes: list            # declared shapes (None for dynamic dims)
    values: list            # concrete float64 arrays
    program: list           # steps: ("unary", name, i) | ("binary", name, i, j) | ...

    def build(self, leaves):
        nodes = list(leaves)
        for step in self.program:
            kind = step[0]
            if kind == "unary":
                nodes.append(UNARY[step[1]][0](nodes[step[2]]))
            elif kind == "binary":
                nodes.append(BINARY[step[1]](nodes[step[2]], nodes[step[3]]))
            elif kind == "reduce":
                nodes.append(REDUCE[step[1]](nodes[step[2]], axis=step[3], keepdims=step[4]))
            elif kind == "matmul":
                nodes.append(nodes[step[1]] @ nodes[step[2]])
            elif kind == "structure":
                nodes.append(STRUCTURE[step[1]][0](nodes[step[2]], step[3]))
        return gc.sum(nodes[-1])


@st.composite
def cases(draw, max_steps=6):
    """A random graph over 2-3 inputs whose shapes broadcast against a base shape."""
    rank = draw(st.integers(0, 3))
    base = tuple(draw(st.lists(st.integers(1, 4), min_size=rank, max_size=rank)))
    n_inputs = draw(st.integers(1, 3))
    shapes, values, declared = [], [], []
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 16)))
    for _ in range(n_inputs):
        keep = draw(st.integers(0, rank))
        shape = tuple(d if draw(st.booleans()) else 1 for d in base[rank - keep:])
        dyn = tuple(None if (d > 1 and draw(st.booleans())) else d for d in shape)
        shapes.append(shape)
        declared.append(dyn)
        values.append(rng.uniform(-1.5, 1.5, size=shape))
    current = [s for s in shapes]               # concrete shape of every node
    program = []
    for _ in range(draw(st.integers(1, max_steps))):
        kind = draw(st.sampled_from(["unary", "binary", "binary", "reduce", "matmul",
                                     "structure"]))
        i = draw(st.integers(0, len(current) - 1))
        if kind == "unary":
            program.append(("unary", draw(st.sampled_from(sorted(UNARY))), i))
            current.append(current[i])
        elif kind == "binary":
            j = draw(st.integers(0, len(current) - 1))
            if i == j:              # x - x sits exactly on the kinks of relu, abs, max
                continue
            try:
                out = np.broadcast_shapes(current[i], current[j])
            except ValueError:
                continue
            program.append(("binary", draw(st.sampled_from(sorted(BINARY))), i, j))
            current.append(out)
        elif kind == "reduce" and current[i]:
            nd = len(current[i])
            axis = draw(st.one_of(st.none(), st.integers(-nd, nd - 1)))
            keep = draw(st.booleans())
            program.append(("reduce", draw(st.sampled_from(sorted(REDUCE))), i, axis, keep))
            current.append(tuple(np.sum(np.zeros(current[i]), axis=axis, keepdims=keep).shape))
        elif kind == "matmul" and 1 <= len(current[i]) <= 2:
            j = draw(st.integers(0, len(current) - 1))
            a, b = current[i], current[j]
            if 1 <= len(b) <= 2 and a[-1] == b[0]:
                program.append(("matmul", i, j))
                current.append((np.zeros(a) @ np.zeros(b)).shape)
        elif kind == "structure" and current[i]:
            name = draw(st.sampled_from(sorted(STRUCTURE)))
            axis = draw(st.integers(-len(current[i]), len(current[i]) - 1))
            program.append(("structure", name, i, axis))
            current.append(tuple(STRUCTURE[name][1](tuple(current[i]), axis)))
    if not program:
        program.append(("unary", "tanh", 0))
    return Case(declared, values, program)
