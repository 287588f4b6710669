"""The eager tape: reverse mode the way PyTorch and micrograd do it, over graphc's op table.

Every operation runs its NumPy implementation immediately and, when a gradient is
needed, records (op, parents).  ``backward()`` walks the records in reverse topological
order and applies the *same* derivative rules the graph compiler uses, interpreted with
NumPy arrays.  It is graphc's speed baseline and an independent oracle for tests, so
it is kept lean: no copies beyond what NumPy makes, no graph building.
"""

from __future__ import annotations

import sys
from types import SimpleNamespace

import numpy as np

from . import api
from .autodiff import elementwise_vjp
from .graph import Expr, inputs_of, postorder
from .interpreter import run_graph
from .operators import OperatorMixin
from .ops import OPS

#: The derivative rules' namespace, interpreted eagerly with NumPy.
NUMPY_RULES = SimpleNamespace(**{name: op.impl for name, op in OPS.items()},
                              apply=lambda name, *args, **params: OPS[name].impl(*args, **params))


class Tensor(OperatorMixin):
    """An array on the tape.  ``.grad`` is ``None`` until ``backward()`` reaches it."""

    __slots__ = ("_op", "_params", "_parents", "data", "grad", "requires_grad")

    def __init__(self, data, requires_grad=False):
        if isinstance(data, Tensor):
            data = data.data
        arr = np.asarray(data)
        if arr.dtype.kind not in "f":
            if arr.dtype.kind not in "biu":
                raise TypeError(f"tape.Tensor: expected real numbers, got {arr.dtype} data")
            arr = arr.astype(np.float64)
        self.data = arr
        self.requires_grad = bool(requires_grad)
        self.grad = None
        self._op = None
        self._parents = ()
        self._params = None

    shape = property(lambda self: self.data.shape)
    dtype = property(lambda self: self.data.dtype)
    size = property(lambda self: self.data.size)

    def numpy(self):
        return self.data

    def item(self):
        return self.data.item()

    def __repr__(self):
        flag = ", requires_grad=True" if self.requires_grad else ""
        return f"tape.Tensor({self.data!r}{flag})"

    def zero_grad(self):
        """Clear this tensor's gradient (``backward`` accumulates into ``.grad``)."""
        self.grad = None

    def backward(self, grad=None):
        """Accumulate d self / d leaf into ``.grad`` of every leaf that requires it."""
        if grad is None:
            if self.data.shape != ():
                raise ValueError(f"backward() without a gradient needs a scalar, but this "
                                 f"tensor has shape {self.data.shape}")
            grad = np.ones((), dtype=self.data.dtype)
        else:
            grad = np.asarray(grad.data if isinstance(grad, Tensor) else grad, self.data.dtype)
            if grad.shape != self.data.shape:
                raise ValueError(f"backward(): gradient of shape {grad.shape} does not match "
                                 f"the tensor's shape {self.data.shape}")
        adjoints = {self: grad}
        order = _toposort(self)
        for t in reversed(order):
            g = adjoints.pop(t, None)
            if g is None:
                continue
            if t._op is None:
                g = np.array(g, dtype=t.data.dtype)          # owned by the leaf
                t.grad = g if t.grad is None else t.grad + g
                continue
            for parent, c in zip(t._parents, _local_vjp(t, g)):
                if c is None:
                    continue
                c = np.asarray(c).astype(parent.data.dtype, copy=False)
                prev = adjoints.get(parent)
                adjoints[parent] = c if prev is None else prev + c
        for t in order:             # leaves on the tape that no adjoint reached: zero
            if t._op is None and t.grad is None:
                t.grad = np.zeros(t.data.shape, t.data.dtype)


def _wants_grad(x):
    return isinstance(x, Tensor) and x.requires_grad


def _local_vjp(t, g):
    op, params = t._op, t._params
    args = [_value(p) for p in t._parents]
    wanted = [_wants_grad(p) for p in t._parents]
    if op.kind == "elementwise":
        contributions = elementwise_vjp(NUMPY_RULES, op, g, t.data, args, wanted)
    elif op.vjp is None:
        return [None] * len(args)
    else:
        contributions = op.vjp(NUMPY_RULES, g, t.data, *args, **params)
    return [c if w else None for c, w in zip(contributions, wanted)]


def _toposort(root):
    """Recorded tensors reachable from `root`, parents first."""
    return postorder([root], lambda t: [p for p in t._parents if _wants_grad(p)])


def _value(a):
    """An argument's data: a tensor's array; the value of a graph of constants
    (composites such as argmax, pad or one_hot build them, and run on the tape too)."""
    if isinstance(a, Tensor):
        return a.data
    if isinstance(a, Expr):
        if a.is_const:
            return a.value
        if inputs_of([a]):
            raise TypeError(f"cannot mix a graph expression ({a!r}) with tape tensors in one "
                            "operation: evaluate it first, or build the whole graph")
        return run_graph([a], {})[0]
    return a


def apply(op_name, args, **params):
    """Run one op eagerly, recording it when any argument requires a gradient."""
    op = OPS[op_name]
    arrays = [_value(a) for a in args]
    out = Tensor.__new__(Tensor)
    out.data = np.asarray(op.impl(*arrays, **params))
    out.grad = None
    # Recorded even when the op's derivative is zero (sign, comparisons): backward()
    # must still reach the leaves behind it and give them zero gradients.
    out.requires_grad = any(_wants_grad(a) for a in args)
    if out.requires_grad:
        out._op, out._parents, out._params = op, tuple(args), params
    else:
        out._op, out._parents, out._params = None, (), None
    return out


__all__ = ["NUMPY_RULES", "Tensor", "apply"]


api.register_tape(sys.modules[__name__])
