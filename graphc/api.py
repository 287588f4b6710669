"""The functions users call: ``gc.exp``, ``gc.sum``, ``gc.softmax`` ...

Each primitive function is a thin dispatcher: given tape tensors it runs eagerly on the
tape, otherwise it builds a graph node.  Composite functions (``mean``, ``softmax``,
``cross_entropy`` ...) are written once in terms of primitives and so work on both.
"""

from __future__ import annotations

import builtins

import numpy as np

from . import graph, operators
from .ops import OPS
from .shapes import ShapeError, check_shape_arg, format_shape, normalize_axes

_tape = None        # graphc.tape registers itself here when it is imported
const = graph.const


def register_tape(module):
    global _tape
    _tape = module


def _apply(op_name, *args, **params):
    if _tape is not None and any(type(a) is _tape.Tensor for a in args):
        return _tape.apply(op_name, args, **params)
    return graph.apply(op_name, args, **params)


def apply(op_name, *args, **params):
    """Apply any op of the table by name (how derivative rules reach ops defined later,
    such as those made by ``gc.elementwise``)."""
    return _apply(op_name, *args, **params)


def shape_of(x):
    """The shape of an expression, a tape tensor, an array or a number."""
    if isinstance(x, graph.Expr) or hasattr(x, "shape"):
        return tuple(x.shape)
    return np.shape(x)



def _elementwise(name):
    op = OPS[name]

    def fn(*args):
        if len(args) != op.arity:
            raise TypeError(f"{name}() takes {op.arity} argument{'s' * (op.arity > 1)}, "
                            f"got {len(args)}")
        return _apply(name, *args)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = op.doc or f"Elementwise {name}, with NumPy broadcasting."
    return fn


neg, add, sub, mul, div, pow = (_elementwise(n) for n in ("neg", "add", "sub", "mul", "div", "pow"))
exp, _log, log1p, sqrt, square, abs = (_elementwise(n) for n in
                                       ("exp", "log", "log1p", "sqrt", "square", "abs"))


def log(x):
    """Natural logarithm.  ``log(sigmoid(z))`` is built as ``-softplus(-z)``, which is
    the same function but stays finite (value and gradient) where sigmoid underflows."""
    if isinstance(x, graph.Expr) and x.op == "sigmoid":
        return neg(softplus(neg(x.args[0])))
    return _log(x)
sign, sin, cos, tanh, sigmoid, relu, softplus = (_elementwise(n) for n in
                                                 ("sign", "sin", "cos", "tanh", "sigmoid",
                                                  "relu", "softplus"))
maximum, minimum, where = (_elementwise(n) for n in ("maximum", "minimum", "where"))
less, less_equal, greater, greater_equal, equal = (
    _elementwise(n) for n in ("less", "less_equal", "greater", "greater_equal", "equal"))


def astype(x, dtype):
    """``x`` converted to float32 or float64."""
    return _apply("astype", x, dtype=np.dtype(dtype))


def _reduction(name):
    def fn(x, axis=None, keepdims=False):
        axes = normalize_axes(name, axis, len(shape_of(x)))
        return _apply(name, x, axis=axes, keepdims=bool(keepdims))
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"{name} over `axis` (None: all axes; an int or a tuple), NumPy-style."
    return fn


sum, max, min, logsumexp = (_reduction(n) for n in ("sum", "max", "min", "logsumexp"))


def numel(x, axis=None):
    """The number of elements of ``x`` along ``axis``, as a scalar of x's dtype."""
    return _apply("numel", x, axis=normalize_axes("numel", axis, len(shape_of(x))))


def mean(x, axis=None, keepdims=False):
    """Arithmetic mean over ``axis``; works for dynamic dimensions too."""
    return sum(x, axis, keepdims) / numel(x, axis)


def transpose(x, axes=None):
    ndim = len(shape_of(x))
    axes = tuple(reversed(range(ndim))) if axes is None else tuple(int(a) % builtins.max(ndim, 1) for a in axes)
    if sorted(axes) != list(range(ndim)):
        raise ShapeError(f"transpose: axes {axes} are not a permutation of the "
                         f"{ndim} axes of shape {format_shape(shape_of(x))}")
    return _apply("transpose", x, axes=axes)


def expand_dims(x, axis):
    axis = (axis,) if isinstance(axis, int) else tuple(axis)
    ndim = len(shape_of(x)) + len(axis)
    return _apply("expand_dims", x, axis=normalize_axes("expand_dims", axis, ndim))


def reshape(x, shape):
    """``x`` with a new shape.  One entry may be -1 (inferred).  For an input whose
    leading dimension is dynamic, the new shape keeps that leading dimension
    (``None`` or -1 first) and reshapes the rest, e.g. (None, 784) -> (None, 28, 28)."""
    old = shape_of(x)
    new = list(check_shape_arg("reshape", shape))
    if new.count(-1) + new.count(None) > 1:
        raise ShapeError(f"reshape: at most one dimension of {tuple(shape)} may be unknown")
    if None in old[1:]:
        raise ShapeError(f"reshape: only a leading dynamic dimension can be reshaped, "
                         f"got shape {format_shape(old)}")
    if old and old[0] is None:
        if not new or new[0] not in (None, -1):
            raise ShapeError(f"reshape: shape {format_shape(old)} has a dynamic leading "
                             f"dimension, so the new shape {tuple(shape)} must start with None")
        rest_old, rest_new = old[1:], new[1:]
        new[0] = None
    else:
        rest_old, rest_new = old, new
    known = int(np.prod([d for d in rest_new if d not in (None, -1)]))
    total = int(np.prod(rest_old))
    if -1 in rest_new:
        if known == 0 or total % known:
            raise ShapeError(f"reshape: cannot reshape {format_shape(old)} to {tuple(shape)}")
        new[new.index(-1)] = total // known
    elif known != total:
        raise ShapeError(f"reshape: cannot reshape {format_shape(old)} "
                         f"({total} elements per row) to {tuple(shape)}")
    return _apply("reshape", x, shape=tuple(new))


def broadcast_to(x, shape):
    return _apply("broadcast_to", x, shape=check_shape_arg("broadcast_to", shape))


def broadcast_like(x, like):
    return _apply("broadcast_like", x, like)


def matmul(a, b):
    return _apply("matmul", a, b)


# ---------------------------------------------------------------------------------
# Neural-network composites
# ---------------------------------------------------------------------------------

def log_softmax(x, axis=-1):
    """log(softmax(x)), computed as x - logsumexp(x): finite for any finite input."""
    return x - logsumexp(x, axis=axis, keepdims=True)


def softmax(x, axis=-1):
    return exp(log_softmax(x, axis=axis))


def cross_entropy(logits, onehot):
    """Per-row cross-entropy of softmax(logits) against one-hot (or soft) targets:
    shape (N,) for (N, K) inputs, () for (K,)."""
    shape, target_shape = shape_of(logits), shape_of(onehot)
    if len(shape) not in (1, 2):
        raise ShapeError(f"cross_entropy: logits must be (K,) or (N, K), got {format_shape(shape)}")
    if len(target_shape) != len(shape) or any(
            isinstance(a, int) and isinstance(b, int) and a != b
            for a, b in zip(shape, target_shape)):
        # Broadcasting would accept (N,) targets against (N, K) logits (N meets K) and
        # compute garbage: targets are one row of K class weights per row of logits.
        raise ShapeError(f"cross_entropy: the targets must have the logits' shape "
                         f"{format_shape(shape)} (one-hot or soft targets, one row of K "
                         f"class weights per example), got {format_shape(target_shape)}")
    return -sum(onehot * log_softmax(logits, axis=-1), axis=-1)


def mse(pred, target):
    """Mean of the squared differences over all elements."""
    return mean(square(pred - target))


operators.install(globals())

#: The functions users call (``graphc`` exports exactly these, with the rest of its API);
#: everything else here is plumbing for derivative rules and the tape.
__all__ = sorted(n for n, v in list(globals().items())
                 if callable(v) and not n.startswith("_") and getattr(v, "__module__", "") == __name__
                 and n not in ("apply", "register_tape", "shape_of"))
