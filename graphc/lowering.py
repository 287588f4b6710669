"""How an op compiles: the lowering record each op-table entry carries.

The code generator never decides by an op's name.  It asks the op's ``lowering``
where the node goes and what code computes it:

* ``PerElement`` - computed per index inside a fused loop nest, from the op's scalar
  template (``code``/``helper`` in the op table, or a helper made from a SymPy formula);
  ``identity`` ops (astype, broadcasts) are their first argument's element;
* ``Reduce``     - an accumulator fed inside the loop that produces its input;
* ``View``       - an expression over the argument array that may alias it (transpose,
  reshape, expand_dims): outputs that are views are copied, and a view keeps its base's
  buffer alive;
* ``Call``       - a compiled function of whole arrays that returns a new array (BLAS
  matrix products from the shared runtime, a custom op's Numba implementation);
* ``Code``       - a few statements of the op's own that fill a new array
  (concatenate, pad, the adjoint of indexing);
* ``ObjMode``    - the op's NumPy implementation called from compiled code through
  ``numba.objmode`` (correct, slower: compiling one warns, naming the op);
* ``Size``       - a size computed from shapes only (numel);
* ``Rewrite``    - replaced, before scheduling, by a graph of other ops (logsumexp).

An op without a lowering cannot be compiled: the code generator raises
``NotImplementedError`` naming it, so a new op never falls through to another op's code.
This module holds data and small code-string builders only; it imports nothing from
graphc, so the op table can use it without import cycles.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


class Lowering:
    """Base class.  ``rewrite(F, node, args)`` may return a replacement graph, built
    with the graph functions of namespace `F` (``graphc.api``) and applied by the
    lowering pass before scheduling (None: keep the node)."""

    def rewrite(self, F, node, args):
        return None


@dataclass(frozen=True)
class PerElement(Lowering):
    """Computed per element in fused loops, from the op's scalar forms:

    * `code`: a Numba expression template (``{0}``, ``{1}`` ... are the arguments, plain
      variable names, so an argument may appear twice); None for ops made from a SymPy
      formula, whose helper function is generated;
    * `helper`: the source of a scalar function `code` calls (branches live there:
      branchy inline code slows Numba's typing); it joins the shared runtime;
    * `code_sym`: a SymPy form safe to print as code (numerically stable, the same NaN
      handling), used to optimise loop bodies; None: the op stays an opaque call;
    * `reads`: the arguments whose element values are read (None: all;
      ``broadcast_like`` reads only its first, the second gives a shape);
    * `identity`: the element is the first argument's element (astype, broadcasts);
    * `scalar`, `scalar_helper`: the template (and its helper) for statements outside
      loops, when `code` is written for vector code: there libm is exact and free to
      compile, while the vectorisable polynomials Numba inlines at every call cost
      compile time (a 1,000-node scalar DAG took 3x longer) and buy nothing."""

    code: str | None = None
    helper: str | None = None
    scalar: str | None = None
    scalar_helper: str | None = None
    code_sym: Callable | None = None
    reads: tuple | None = None
    identity: bool = False

    def value_args(self, node):
        return node.args if self.reads is None else tuple(node.args[i] for i in self.reads)


@dataclass(frozen=True)
class Reduce(Lowering):
    """An accumulator: `combine` is "sum", "max" or "min".  A sum over no axes, or a
    max/min over none, is its argument."""

    combine: str

    def start(self, dtype):
        """The accumulator's first value, a literal of `dtype`: the identity of sum,
        the least (max) or greatest (min) value."""
        kind = dtype.kind
        if self.combine == "sum":
            return "0.0" if kind == "f" else "0"
        if kind == "f":
            return "-np.inf" if self.combine == "max" else "np.inf"
        if kind == "b":
            return "False" if self.combine == "max" else "True"
        info = np.iinfo(dtype)
        return str(info.min if self.combine == "max" else info.max)

    def accumulate(self, acc, x):
        """Statements (as (depth offset, line) pairs) folding element `x` into `acc`;
        max and min propagate NaN."""
        if self.combine == "sum":
            return [(0, f"{acc} += {x}")]
        cmp = ">" if self.combine == "max" else "<"
        return [(0, f"if {x} {cmp} {acc} or {x} != {x}:"), (1, f"{acc} = {x}")]

    @property
    def parallel_scalar(self):
        """Whether a scalar accumulator may be updated from ``prange`` iterations
        (Numba turns ``+=`` into a parallel reduction; the branchy max/min it cannot)."""
        return self.combine == "sum"

    def rewrite(self, F, node, args):
        if node.kwargs["axis"]:
            return None
        (x,) = args
        return x if x.dtype == node.dtype else F.astype(x, node.dtype)


@dataclass(frozen=True)
class View(Lowering):
    """``expression(x, node, out_shape)`` -> the expression for the view of array
    variable `x`; `transparent`: in formulas (``to_sympy``) the node is its argument;
    `indexes`: the expression indexes `x` and so is right for every shape (a scalar
    result included); otherwise views of and to shape () are handled generically."""

    expression: Callable
    transparent: bool = True
    indexes: bool = False


@dataclass(frozen=True)
class Call(Lowering):
    """``function(*args)`` on whole arrays, returning a new array.  With
    `cast_operands`, array operands of another dtype are converted to the result's
    first (BLAS wants one dtype)."""

    function: str
    cast_operands: bool = False
    rewrite_fn: Callable | None = None   # cases lowered to other ops (batched matmul)

    def rewrite(self, F, node, args):
        return None if self.rewrite_fn is None else self.rewrite_fn(F, node, args)


@dataclass(frozen=True)
class Code(Lowering):
    """A few statements of its own: ``lines(target, args, node, shape) -> [str]``
    compute variable `target` (a new array) from argument variables `args`; `shape`
    is the node's shape as source (dynamic sizes named).  For structural ops that fill
    an array piece by piece (concatenate, pad, the adjoint of indexing)."""

    lines: Callable
    helpers: tuple = ()          # sources of compiled functions the lines call (runtime)


@dataclass(frozen=True)
class ObjMode(Lowering):
    """The op's NumPy implementation, called from compiled code in object mode."""


@dataclass(frozen=True)
class Size(Lowering):
    """The product of the argument's sizes along ``axis``, from shapes only; a
    constant when those sizes are static."""

    def rewrite(self, F, node, args):
        dims = [args[0].shape[a] for a in node.kwargs["axis"]]
        if all(isinstance(d, int) for d in dims):
            return F.const(float(math.prod(dims)), node.dtype)
        return None


@dataclass(frozen=True)
class Rewrite(Lowering):
    """Replaced by ``fn(node, args)``, a graph of ops that have lowerings."""

    fn: Callable

    def rewrite(self, F, node, args):
        return self.fn(F, node, args)


__all__ = ["Call", "Code", "Lowering", "ObjMode", "PerElement", "Reduce", "Rewrite", "Size", "View"]
