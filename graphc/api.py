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


bitwise_and, bitwise_or, bitwise_xor, invert, mod, floor_divide = (
    _elementwise(n) for n in ("bitwise_and", "bitwise_or", "bitwise_xor", "invert", "mod",
                              "floor_divide"))
floor, ceil, round, expm1, erf, tan, arctan, arctan2, log2, log10 = (
    _elementwise(n) for n in ("floor", "ceil", "round", "expm1", "erf", "tan", "arctan",
                              "arctan2", "log2", "log10"))
stop_gradient = _elementwise("stop_gradient")


def leaky_relu(x, negative_slope=0.01):
    """x where x > 0, else negative_slope * x (PyTorch's: slope at 0)."""
    return where(greater(x, 0.0), x, x * negative_slope)


def elu(x, alpha=1.0):
    """x where x > 0, else alpha * (exp(x) - 1); expm1 of min(x, 0), so the branch not
    taken stays finite and its derivative is no 0 * inf."""
    return where(greater(x, 0.0), x, alpha * expm1(minimum(x, 0.0)))


def gelu(x):
    """x * Phi(x), the erf form (PyTorch's default)."""
    return 0.5 * x * (1.0 + erf(x * 0.7071067811865476))


def silu(x):
    """x * sigmoid(x) (also called swish)."""
    return x * sigmoid(x)


def clip(x, lo, hi):
    """x limited to [lo, hi]; the gradient reaches x where lo <= x <= hi (bounds
    included) and lo or hi elsewhere."""
    inside = bitwise_and(greater_equal(x, lo), less_equal(x, hi))
    return where(inside, x, where(less(x, lo), lo, hi))


def astype(x, dtype):
    """``x`` converted to `dtype` (float32, float64, int32, int64 or bool)."""
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
    """Per-row cross-entropy of softmax(logits) against one-hot (or soft) targets of
    the logits' shape, or integer class ids (one per row, 0 <= id < K: IndexError
    otherwise): shape (N,) for (N, K) logits, () for (K,)."""
    shape, target_shape = shape_of(logits), shape_of(onehot)
    if len(shape) not in (1, 2):
        raise ShapeError(f"cross_entropy: logits must be (K,) or (N, K), got {format_shape(shape)}")
    if np.dtype(getattr(onehot, "dtype", np.asarray(onehot).dtype)).kind in "iu":
        return _cross_entropy_of_labels(logits, onehot, shape, target_shape)
    if len(target_shape) != len(shape) or any(
            isinstance(a, int) and isinstance(b, int) and a != b
            for a, b in zip(shape, target_shape)):
        # Broadcasting would accept (N,) targets against (N, K) logits (N meets K) and
        # compute garbage: targets are one row of K class weights per row of logits.
        raise ShapeError(f"cross_entropy: the targets must have the logits' shape "
                         f"{format_shape(shape)} (one-hot or soft targets, one row of K "
                         f"class weights per example), got {format_shape(target_shape)}")
    return -sum(onehot * log_softmax(logits, axis=-1), axis=-1)


def _cross_entropy_of_labels(logits, labels, shape, label_shape):
    if len(label_shape) != len(shape) - 1 or (
            label_shape and isinstance(label_shape[0], int) and isinstance(shape[0], int)
            and label_shape[0] != shape[0]):
        raise ShapeError(f"cross_entropy: integer labels must have shape {format_shape(shape[:-1])} "
                         f"(one class id per row of logits {format_shape(shape)}), got "
                         f"{format_shape(label_shape)}")
    k = shape[-1]
    if k is None:
        raise ShapeError("cross_entropy: with integer labels the number of classes (the "
                         "logits' last axis) must be static")
    labels = _as_index(labels, logits)
    checked = _apply("check_index", labels, graph.const(np.asarray(k, np.int64), np.int64))
    targets = one_hot(checked, k, getattr(logits, "dtype", np.float64))
    return -sum(targets * log_softmax(logits, axis=-1), axis=-1)


def mse(pred, target):
    """Mean of the squared differences over all elements."""
    return mean(square(pred - target))


# ---------------------------------------------------------------------------------
# Indexing and structure
# ---------------------------------------------------------------------------------

def _normalize_index(shape, index):
    """A basic NumPy index as the op table's normalised form (see ``graphc.ops``), or
    (for integer arrays, and ints on dynamic dimensions) the gathers to do first."""
    if not isinstance(index, tuple):
        index = (index,)
    if any(i is Ellipsis for i in index):
        if builtins.sum(1 for i in index if i is Ellipsis) > 1:
            raise IndexError("an index can only have a single ellipsis ('...')")
        k = index.index(Ellipsis)
        used = builtins.sum(1 for i in index if i is not None and i is not Ellipsis)
        index = index[:k] + (slice(None),) * (len(shape) - used) + index[k + 1:]
    entries, axis = [], 0
    for i in index:
        if i is None:
            entries.append(("new",))
            continue
        if axis >= len(shape):
            raise IndexError(f"too many indices for an array of shape {format_shape(shape)}")
        d = shape[axis]
        if isinstance(i, (bool, np.bool_)) or (isinstance(i, (graph.Expr, np.ndarray, list))
                                                and np.dtype(getattr(i, "dtype", None)
                                                             or np.asarray(i).dtype) == bool):
            raise TypeError("indexing with a boolean mask has a data-dependent shape: use "
                            "gc.where(mask, x, other) instead")
        if isinstance(i, (int, np.integer)):
            i = int(i)
            if d is None:
                raise _Gather(axis)
            if not -d <= i < d:
                raise IndexError(f"index {i} is out of range for axis {axis} of size {d}")
            entries.append(("int", i % d))
        elif isinstance(i, slice):
            if i == slice(None):
                entries.append(("full",))
            elif i == slice(None, None, -1):
                entries.append(("reverse",))
            elif d is None:
                raise IndexError(f"slicing the dynamic axis {axis} (size known only at call "
                                 "time) by anything but ':' or '::-1' would give a size only "
                                 "the call knows; use gc.take with an index array")
            else:
                start, stop, step = i.indices(d)
                length = len(range(start, stop, step))
                entries.append(("slice", start, None if stop < 0 else stop, step, length))
        else:
            raise _Gather(axis)
        axis += 1
    return tuple(entries)


class _Gather(Exception):
    """An index that is not basic at `axis`: done with take (runtime-checked)."""

    def __init__(self, axis):
        self.axis = axis


def getitem(x, index):
    """``x[index]``: ints, slices, None and ... give a view; integer arrays (lists,
    NumPy arrays, int graph inputs) gather with ``take`` (checked at call time, negative
    indices wrap); a boolean mask is a TypeError (its result shape is data-dependent)."""
    shape = shape_of(x)
    try:
        return _apply("getitem", x, index=_normalize_index(shape, index))
    except _Gather:
        parts = index if isinstance(index, tuple) else (index,)
        return _index_with_arrays(x, parts)


def _index_with_arrays(x, parts):
    """Integer-array (and int-on-dynamic-axis) indexing, as NumPy's for the forms whose
    result layout is unambiguous: one array index, or arrays on leading axes together
    (``x[rows, cols]``)."""
    if any(p is Ellipsis or p is None for p in parts):
        raise IndexError("mixing integer-array indices with ... or None is not supported; "
                         "index in two steps")
    arrays = [k for k, p in enumerate(parts) if not isinstance(p, slice)]
    if len(arrays) == 1:
        k = arrays[0]
        out = take(x, parts[k], axis=k)
        rest = tuple(slice(None) if j == k else p for j, p in enumerate(parts))
        if all(p == slice(None) for p in rest):
            return out
        lead = len(shape_of(parts[k])) if not isinstance(parts[k], (int, np.integer)) else 0
        return getitem(out, rest[:k] + (slice(None),) * lead + rest[k + 1:])
    if arrays != list(range(len(arrays))):
        raise IndexError("integer-array indices on non-adjacent or non-leading axes are not "
                         "supported; index in two steps")
    shape = shape_of(x)
    if any(d is None for d in shape[1:len(arrays)]):
        raise IndexError("x[rows, cols] needs the indexed axes after the first to be static")
    flat = 0
    stride = 1
    for k in reversed(range(len(arrays))):           # row-major flat index of the tuple
        i = _as_index(parts[k], None)                # NumPy data or an int graph node
        if shape[k] is not None:
            if isinstance(i, np.ndarray):
                if ((i < -shape[k]) | (i >= shape[k])).any():
                    raise IndexError(f"an index is out of range for axis {k} of size {shape[k]}")
                i = np.where(i < 0, i + shape[k], i)
            else:                                    # negative indices wrap per axis
                i = where(less(i, 0), i + shape[k], i)
        flat = flat + i * stride
        stride = stride * (shape[k] or 1)
    if isinstance(flat, np.ndarray) and isinstance(x, graph.Expr):
        flat = graph.const(flat.astype(np.int64), np.int64)
    merged = reshape(x, (None if shape[0] is None else -1,) + tuple(shape[len(arrays):])) \
        if len(arrays) > 1 else x
    if shape[0] is None and len(arrays) > 1:
        raise IndexError("x[rows, cols] with a dynamic first axis is not supported")
    return take(merged, flat, axis=0)


def _as_index(i, x):
    """An index argument: an int graph node, or int64 data (a constant node when `x` is
    a graph node, a NumPy array for tape tensors)."""
    if isinstance(i, graph.Expr) or (_tape is not None and type(i) is _tape.Tensor):
        if i.dtype.kind not in "iu":
            raise TypeError(f"an index array must hold integers, got {i.dtype}")
        return i
    arr = np.asarray(i)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"an index array must hold integers, got {arr.dtype}")
    arr = arr.astype(np.int64)
    return graph.const(arr, np.int64) if isinstance(x, graph.Expr) else arr


def take(x, indices, axis=None):
    """x gathered at integer `indices` along `axis` (None: of the flattened x), as
    ``np.take``; negative indices wrap; one out of range is an IndexError (when the
    graph is built for constant indices, at call time otherwise)."""
    if axis is None:
        x, axis = reshape(x, (-1,)), 0
    ndim = len(shape_of(x))
    (axis,) = normalize_axes("take", axis, ndim)
    idx = _as_index(indices, x)
    d = shape_of(x)[axis]
    value = idx.value if isinstance(idx, graph.Expr) and idx.is_const else (
        idx if isinstance(idx, np.ndarray) else None)
    if value is not None and d is not None and value.size and (
            value.min() < -d or value.max() >= d):
        raise IndexError(f"take: an index is out of range for axis {axis} of size {d}")
    return _apply("take", x, idx, axis=axis)


def prod(x, axis=None, keepdims=False):
    """The product of x's elements along ``axis`` (None: all; an int or a tuple), as
    ``np.prod``.  A composite: a tree of elementwise products of the two halves of the
    (static) axis, so each element's gradient is the product of the others, exact with
    zeros in x (never prod / x)."""
    shape = shape_of(x)
    axes = tuple(range(len(shape))) if axis is None else normalize_axes("prod", axis, len(shape))
    for a in sorted(axes, reverse=True):
        n = shape_of(x)[a]
        if n is None:
            raise ShapeError(f"prod: axis {a} of {format_shape(shape_of(x))} must have a static size")
        y = moveaxis(x, a, -1)
        lead = (slice(None),) * (len(shape_of(y)) - 1)
        rest = None
        while n > 1:
            if n % 2:
                last = getitem(y, lead + (slice(n - 1, n),))
                rest = last if rest is None else rest * last
                n -= 1
            h = n // 2
            y = getitem(y, lead + (slice(0, h),)) * getitem(y, lead + (slice(h, n),))
            n = h
        if n == 0:
            y = full(shape_of(y)[:-1] + (1,), 1.0)                      # an empty axis
        if rest is not None:
            y = y * rest
        x = moveaxis(y, -1, a)
    return x if keepdims else squeeze(x, axes) if axes else x


def take_along_axis(x, indices, axis):
    """As ``np.take_along_axis`` (``axis=None`` flattens x; indices of x's ndim broadcast
    against x on the other axes).  Negative indices wrap; one out of range is an
    IndexError (at build time for constants, at call time otherwise).  A composite: the
    indices are checked and wrapped by a gather from ``arange(n)``, made flat positions by
    integer arithmetic with constant offsets, and x's flattened values gathered there (its
    gradient a scatter-add, duplicates summing).  x needs a static shape."""
    if axis is None:
        x, axis = reshape(x, (-1,)), 0
    shape = shape_of(x)
    idx = _as_index(indices, x)
    ishape = shape_of(idx)
    if None in shape or None in ishape:
        raise ShapeError(f"take_along_axis: shapes {format_shape(shape)} and "
                         f"{format_shape(ishape)} must be static")
    if len(ishape) != len(shape):
        raise ShapeError(f"take_along_axis: indices of shape {format_shape(ishape)} must have "
                         f"the {len(shape)} axes of x's shape {format_shape(shape)}")
    (axis,) = normalize_axes("take_along_axis", axis, len(shape))
    out = []
    for a, (d, i) in enumerate(zip(shape, ishape)):
        if a == axis:
            out.append(i)
        elif d == i or i == 1 or d == 1:
            out.append(builtins.max(d, i) if 1 in (d, i) else d)
        else:
            raise ShapeError(f"take_along_axis: indices of shape {format_shape(ishape)} do not "
                             f"broadcast against x's shape {format_shape(shape)} off axis {axis}")
    out = tuple(out)
    x = broadcast_to(x, tuple(shape[a] if a == axis else out[a] for a in range(len(shape)))) \
        if any(shape[a] != out[a] for a in range(len(shape)) if a != axis) else x
    shape = shape_of(x)
    strides = np.cumprod((shape[1:] + (1,))[::-1])[::-1].astype(np.int64)
    offsets = np.zeros(out, dtype=np.int64)
    for a in range(len(shape)):
        if a != axis:
            grid = np.arange(out[a], dtype=np.int64).reshape([-1 if b == a else 1 for b in range(len(out))])
            offsets = offsets + grid * strides[a]
    wrapped = take(arange(shape[axis], dtype=np.int64), idx)
    flat = wrapped * graph.const(np.int64(strides[axis]), np.int64) + graph.const(offsets, np.int64)
    return take(reshape(x, (-1,)), flat)


class IndexUpdate:
    """``x.at[index]``: functional updates in JAX's spelling — ``.set(v)`` and
    ``.add(v)`` return a new array; with repeated integer indices ``add`` adds every
    value, and ``set`` writes their mean (JAX leaves which one wins unspecified)."""

    def __init__(self, x, index=None):
        self.x, self.index = x, index

    def __getitem__(self, index):
        return IndexUpdate(self.x, index)

    def _scatter(self, v):
        """(v scattered into zeros of x's shape, how many updates each place got)."""
        x, index = self.x, self.index
        target = getitem(x, index)
        v = broadcast_to(v, shape_of(target)) if shape_of(v) != shape_of(target) else v
        try:
            basic = _normalize_index(shape_of(x), index)
        except _Gather:
            parts = index if isinstance(index, tuple) else (index,)
            if len(parts) != 1:
                raise IndexError("x.at[...] takes one integer-array index (on the first "
                                 "axis) or a basic index") from None
            idx = _as_index(parts[0], x)
            return (_apply("take_adjoint", v, idx, x, axis=0),
                    _apply("take_adjoint", ones_like(v), idx, x, axis=0))
        return (_apply("index_adjoint", v, x, index=basic),
                _apply("index_adjoint", ones_like(v), x, index=basic))

    def add(self, v):
        return self.x + self._scatter(v)[0]

    def set(self, v):
        total, count = self._scatter(v)
        return where(greater(count, 0.0), total / maximum(count, 1.0), self.x)


def at(x):
    return IndexUpdate(x)


def concatenate(xs, axis=0):
    """Arrays joined along an existing `axis` (its sizes must be static)."""
    xs = list(xs)
    if not xs:
        raise ValueError("concatenate: need at least one array")
    (axis,) = normalize_axes("concatenate", axis, len(shape_of(xs[0])))
    return xs[0] if len(xs) == 1 else _apply("concatenate", *xs, axis=axis)


def stack(xs, axis=0):
    """Arrays of one shape joined along a new `axis`."""
    xs = list(xs)
    if not xs:
        raise ValueError("stack: need at least one array")
    ndim = len(shape_of(xs[0])) + 1
    (axis,) = normalize_axes("stack", axis, ndim)
    return concatenate([expand_dims(x, axis) for x in xs], axis=axis)


def split(x, indices_or_sections, axis=0):
    """A list of pieces of x along `axis`, as ``np.split``: a number of equal sections
    or the indices where pieces start."""
    shape = shape_of(x)
    (axis,) = normalize_axes("split", axis, len(shape))
    n = shape[axis]
    if n is None:
        raise ShapeError("split: the axis being split must have a static size")
    if isinstance(indices_or_sections, (int, np.integer)):
        k = int(indices_or_sections)
        if k <= 0 or n % k:
            raise ShapeError(f"split: {n} elements cannot be split into {k} equal sections")
        bounds = list(range(0, n + 1, n // k))
    else:
        bounds = [0] + [builtins.min(builtins.max(int(i), 0), n) for i in indices_or_sections] + [n]
    lead = (slice(None),) * axis
    return [getitem(x, lead + (slice(a, b),)) for a, b in zip(bounds[:-1], bounds[1:])]


def flip(x, axis=None):
    """x reversed along `axis` (None: all axes), as a view."""
    ndim = len(shape_of(x))
    axes = normalize_axes("flip", axis, ndim)
    return getitem(x, tuple(slice(None, None, -1) if a in axes else slice(None)
                            for a in range(ndim))) if ndim else x


def squeeze(x, axis=None):
    """x without size-1 axes (those in `axis`, or all static ones)."""
    shape = shape_of(x)
    axes = (tuple(a for a, d in enumerate(shape) if d == 1) if axis is None
            else normalize_axes("squeeze", axis, len(shape)))
    for a in axes:
        if shape[a] != 1:
            raise ShapeError(f"squeeze: axis {a} of shape {format_shape(shape)} is not 1")
    index = tuple(0 if a in axes else slice(None) for a in range(len(shape)))
    return getitem(x, index) if axes else x


def swapaxes(x, axis1, axis2):
    ndim = len(shape_of(x))
    a, b = (normalize_axes("swapaxes", i, ndim)[0] for i in (axis1, axis2))
    axes = list(range(ndim))
    axes[a], axes[b] = axes[b], axes[a]
    return transpose(x, tuple(axes))


def moveaxis(x, source, destination):
    ndim = len(shape_of(x))
    src = normalize_axes("moveaxis", source, ndim)[0]
    dst = normalize_axes("moveaxis", destination, ndim)[0]
    axes = [a for a in range(ndim) if a != src]
    axes.insert(dst, src)
    return transpose(x, tuple(axes))


def tensordot(a, b, axes=2):
    """NumPy's tensordot: sum over the last ``axes`` axes of ``a`` and the first ``axes``
    of ``b`` (an int), or over the pairs of axes ``(axes_a, axes_b)``.  A composite: the
    contracted axes are transposed together and the product is one matmul (BLAS), so it
    differentiates and compiles as matmul does.  A dynamic dimension is allowed only as
    ``a``'s leading, uncontracted axis when it is ``a``'s only free axis."""
    sa, sb = shape_of(a), shape_of(b)
    na, nb = len(sa), len(sb)
    if isinstance(axes, (int, np.integer)):
        n = int(axes)
        if n < 0 or n > na or n > nb:
            raise ShapeError(f"tensordot: axes={n} for shapes {format_shape(sa)} and {format_shape(sb)}")
        ax_a, ax_b = tuple(range(na - n, na)), tuple(range(n))
    else:
        try:
            ax_a, ax_b = axes
        except (TypeError, ValueError):
            raise TypeError(f"tensordot: axes must be an int or a pair of sequences, got {axes!r}") from None
        ax_a = (ax_a,) if isinstance(ax_a, (int, np.integer)) else tuple(ax_a)
        ax_b = (ax_b,) if isinstance(ax_b, (int, np.integer)) else tuple(ax_b)
        if len(ax_a) != len(ax_b):
            raise ShapeError(f"tensordot: axes {ax_a} and {ax_b} differ in length")
        for ax, n in ((ax_a, na), (ax_b, nb)):
            if any(not -n <= int(i) < n for i in ax) or len(set(int(i) % n for i in ax)) < len(ax):
                raise ShapeError(f"tensordot: axes {ax} out of range or repeated for {n} axes")
        ax_a = tuple(int(i) % na for i in ax_a)
        ax_b = tuple(int(i) % nb for i in ax_b)
    for i, j in zip(ax_a, ax_b):
        if sa[i] is None or sb[j] is None or sa[i] != sb[j]:
            raise ShapeError(f"tensordot: axis {i} of {format_shape(sa)} and axis {j} of "
                             f"{format_shape(sb)} differ")
    free_a = [i for i in range(na) if i not in ax_a]
    free_b = [j for j in range(nb) if j not in ax_b]
    if None in sb or any(sa[i] is None for i in free_a[1:]) or (
            free_a and sa[free_a[0]] is None and (len(free_a) > 1 or free_a[0] != 0)):
        raise ShapeError(f"tensordot: shapes {format_shape(sa)} and {format_shape(sb)}: only "
                         "a's leading axis, as its only free axis, may be dynamic")
    k = int(np.prod([sa[i] for i in ax_a])) if ax_a else 1
    ma = transpose(a, tuple(free_a) + tuple(ax_a)) if na else a
    mb = transpose(b, tuple(ax_b) + tuple(free_b)) if nb else b
    rows = None if free_a and sa[free_a[0]] is None else int(np.prod([sa[i] for i in free_a]))
    ma = reshape(ma, (rows, k))
    mb = reshape(mb, (k, int(np.prod([sb[j] for j in free_b]))))
    out_shape = tuple(sa[i] for i in free_a) + tuple(sb[j] for j in free_b)
    return reshape(matmul(ma, mb), out_shape)


def einsum(subscripts, *operands):
    """NumPy's einsum for one or two operands, explicit (``->``) or implicit output, as a
    composite: labels only in one operand and not in the output are summed, the rest
    transposed into (batch, free, contracted) and multiplied by one (batched) matmul, so it
    compiles to BLAS and differentiates.  Static shapes; a label repeated within an operand
    (traces, diagonals), ellipsis and three or more operands are a NotImplementedError."""
    spec = subscripts.replace(" ", "")
    if "." in spec:
        raise NotImplementedError(f"einsum: ellipsis in {subscripts!r} is not supported yet")
    inputs, arrow, out = spec.partition("->")
    terms = inputs.split(",")
    if len(terms) != len(operands) or len(terms) not in (1, 2):
        raise NotImplementedError(f"einsum: {subscripts!r} with {len(operands)} operands: "
                                  "one or two operands (matching the subscripts) are supported")
    if not all(t.isalpha() for t in terms) or (arrow and out and not out.isalpha()):
        raise ValueError(f"einsum: bad subscripts {subscripts!r}")
    if any(len(set(t)) != len(t) for t in terms) or len(set(out)) != len(out):
        raise NotImplementedError(f"einsum: a label repeated within an operand in "
                                  f"{subscripts!r} (a trace or diagonal) is not supported yet")
    if not arrow:
        counts = {c: "".join(terms).count(c) for c in "".join(terms)}
        out = "".join(sorted(c for c, n in counts.items() if n == 1))
    if set(out) - set("".join(terms)):
        raise ValueError(f"einsum: output labels of {subscripts!r} not in the inputs")
    size = {}
    for t, x in zip(terms, operands):
        shape = shape_of(x)
        if len(shape) != len(t) or None in shape:
            raise ShapeError(f"einsum: operand {t!r} has shape {format_shape(shape)}")
        for c, d in zip(t, shape):
            if size.setdefault(c, d) != d:
                raise ShapeError(f"einsum: label {c!r} has sizes {size[c]} and {d}")
    ops = list(operands)
    for n, t in enumerate(terms):                    # sum labels found nowhere else
        others = out + "".join(terms[:n] + terms[n + 1:])
        drop = tuple(i for i, c in enumerate(t) if c not in others)
        if drop:
            ops[n] = sum(ops[n], drop)
            terms[n] = "".join(c for c in t if c in others)
    if len(ops) == 1:
        t = terms[0]
        return transpose(ops[0], tuple(t.index(c) for c in out)) if t != out else ops[0]
    (ta, tb), (a, b) = terms, ops
    batch = [c for c in ta if c in tb and c in out]
    contracted = [c for c in ta if c in tb and c not in out]
    fa = [c for c in ta if c not in tb]
    fb = [c for c in tb if c not in ta]
    def dims(labels):
        return int(np.prod([size[c] for c in labels])) if labels else 1
    a = transpose(a, tuple(ta.index(c) for c in batch + fa + contracted))
    b = transpose(b, tuple(tb.index(c) for c in batch + contracted + fb))
    a = reshape(a, (dims(batch), dims(fa), dims(contracted)))
    b = reshape(b, (dims(batch), dims(contracted), dims(fb)))
    labels = batch + fa + fb
    y = reshape(matmul(a, b), tuple(size[c] for c in labels))
    return transpose(y, tuple(labels.index(c) for c in out)) if "".join(labels) != out else y


def cumsum(x, axis=None):
    """NumPy's cumsum (``axis=None`` flattens).  For now a composite: the axis moved last
    and multiplied by a constant upper-triangular matrix of ones (one BLAS product, its
    gradient the reverse cumsum for free); O(n^2) along the axis, so a loop primitive
    should replace it for long axes.  The axis must have a static size."""
    if axis is None:
        x, axis = reshape(x, (-1,) if None not in shape_of(x) else (None,)), 0
    shape = shape_of(x)
    if not shape:
        raise ShapeError("cumsum: a scalar has no axis")
    axis = normalize_axes("cumsum", (axis,), len(shape))[0]
    n = shape[axis]
    if n is None:
        raise ShapeError(f"cumsum: axis {axis} of {format_shape(shape)} must have a static size")
    dtype = np.float32 if np.dtype(getattr(x, "dtype", np.float64)) == np.float32 else np.float64
    upper = graph.const(np.triu(np.ones((n, n), dtype=dtype)), dtype)
    return moveaxis(matmul(moveaxis(x, axis, -1), upper), -1, axis)


def outer(a, b):
    """The outer product of two vectors."""
    return expand_dims(reshape(a, (-1,)), 1) * expand_dims(reshape(b, (-1,)), 0)


# ---------------------------------------------------------------------------------
# Constructors
# ---------------------------------------------------------------------------------

def _static_shape(name, shape):
    shape = check_shape_arg(name, shape)
    if any(d is None or d < 0 for d in shape):
        raise ShapeError(f"{name}: the shape must be static and non-negative, got {shape}; "
                         f"use {name}_like(x) to follow x's dynamic dimensions")
    return shape


def full(shape, fill_value, dtype="float64"):
    """An array of `shape` filled with `fill_value` (a broadcast scalar: no data)."""
    shape = _static_shape("full", shape)
    value = graph.const(np.asarray(fill_value, dtype=dtype), np.dtype(dtype))
    return broadcast_to(value, shape) if shape else value


def zeros(shape, dtype="float64"):
    return full(shape, 0, dtype)


def ones(shape, dtype="float64"):
    return full(shape, 1, dtype)


def full_like(x, fill_value, dtype=None):
    """An array of x's shape (dynamic dimensions included) filled with `fill_value`."""
    dtype = np.dtype(dtype or getattr(x, "dtype", np.float64))
    shape = shape_of(x)
    value = graph.const(np.full((1,) * len(shape), fill_value, dtype=dtype), dtype)
    return broadcast_like(value, x) if shape else reshape(value, ())


def zeros_like(x, dtype=None):
    return full_like(x, 0, dtype)


def ones_like(x, dtype=None):
    return full_like(x, 1, dtype)


def eye(n, m=None, k=0, dtype="float64"):
    return graph.const(np.eye(n, m, k, dtype=dtype), np.dtype(dtype))


def arange(start, stop=None, step=1, dtype=None):
    """As ``np.arange`` (integers give int64)."""
    values = np.arange(start, stop, step) if stop is not None else np.arange(start)
    values = values.astype(dtype) if dtype is not None else values
    return graph.const(values, values.dtype)


def tril(x, k=0):
    """The lower triangle of the last two axes (their sizes must be static)."""
    return where(_triangle(x, k, np.tril), x, 0.0)


def triu(x, k=0):
    return where(_triangle(x, k, np.triu), x, 0.0)


def _triangle(x, k, np_fn):
    shape = shape_of(x)
    if len(shape) < 2 or None in shape[-2:]:
        raise ShapeError(f"tril/triu: need the last two axes static, got {format_shape(shape)}")
    return graph.const(np_fn(np.ones(shape[-2:], dtype=bool), k), np.bool_)


def pad(x, pad_width, constant_values=0):
    """x surrounded by `constant_values`, as ``np.pad(x, pad_width)`` (constant mode;
    static shapes)."""
    shape = _static_shape("pad", shape_of(x))
    widths = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (len(shape), 2))
    if (widths < 0).any():
        raise ValueError(f"pad: widths must be non-negative, got {pad_width!r}")
    padded = tuple(int(d + a + b) for d, (a, b) in zip(shape, widths))
    index = tuple(("slice", int(a), int(a + d), 1, int(d)) for d, (a, _) in zip(shape, widths))
    out = _apply("index_adjoint", x, zeros(padded, getattr(x, "dtype", "float64")), index=index)
    if constant_values:
        border = np.pad(np.zeros(shape), widths, constant_values=1.0) * constant_values
        out = out + graph.const(border.astype(getattr(x, "dtype", np.float64)))
    return out


def one_hot(labels, num_classes, dtype="float64"):
    """Rows of `num_classes` zeros with a one at each label (an out-of-range label gives
    a row of zeros, as jax.nn.one_hot)."""
    return astype(equal(expand_dims(labels, -1), arange(int(num_classes))), dtype)


# ---------------------------------------------------------------------------------
# Statistics and norms (composites: their gradients follow)
# ---------------------------------------------------------------------------------

def var(x, axis=None, ddof=0, keepdims=False):
    """Variance over `axis`, with ``ddof`` as NumPy's."""
    centred = x - mean(x, axis, keepdims=True)
    return sum(square(centred), axis, keepdims) / (numel(x, axis) - float(ddof))


def std(x, axis=None, ddof=0, keepdims=False):
    return sqrt(var(x, axis, ddof, keepdims))


def norm(x, ord=None, axis=None, keepdims=False):
    """Vector norms (2 by default, 1, inf) over `axis`, or over all elements the
    Frobenius norm; for a matrix with axis=None, ord 1 / inf are the max column / row
    sums, as NumPy's."""
    ndim = len(shape_of(x))
    if axis is None and ndim == 2 and ord in (1, np.inf):
        a = 0 if ord == 1 else 1
        return max(sum(abs(x), axis=a, keepdims=True), axis=(0, 1), keepdims=keepdims)
    if ord in (None, 2, "fro"):
        return sqrt(sum(square(x), axis, keepdims))
    if ord == 1:
        return sum(abs(x), axis, keepdims)
    if ord == np.inf:
        return max(abs(x), axis, keepdims)
    raise ValueError(f"norm: ord {ord!r} is not supported (None, 2, 'fro', 1, inf)")


def _argext(x, axis, extremum):
    shape = shape_of(x)
    if axis is None:
        x, axis = reshape(x, (-1,)), 0
        shape = shape_of(x)
    (axis,) = normalize_axes("argmax", axis, len(shape))
    n = shape[axis]
    if n is None:
        raise ShapeError("argmax/argmin: the reduced axis must have a static size")
    positions = reshape(arange(n, dtype=np.float64), (n,) + (1,) * (len(shape) - axis - 1))
    best = extremum(x, axis=axis, keepdims=True)
    hit = bitwise_or(equal(x, best), bitwise_xor(equal(x, x), True))   # NaN: first NaN wins
    return astype(min(where(hit, positions, float(n)), axis=axis), np.int64)


def argmax(x, axis=None):
    """The first index of the maximum along `axis` (None: of the flattened x), int64;
    NaN counts as the maximum, as NumPy's.  No gradient."""
    return _argext(x, axis, max)


def argmin(x, axis=None):
    return _argext(x, axis, min)


operators.install(globals())

#: The functions users call (``graphc`` exports exactly these, with the rest of its API);
#: everything else here is plumbing for derivative rules and the tape.
__all__ = sorted(n for n, v in list(globals().items())
                 if callable(v) and not n.startswith("_") and getattr(v, "__module__", "") == __name__
                 and n not in ("apply", "register_tape", "shape_of", "at", "IndexUpdate"))
