"""Shape algebra: broadcasting, axis normalisation and the meeting of dimensions.

A dimension is an ``int`` or ``None`` (known only at call time).  Every shape rule in
the op table is written against one callback, ``meet(a, b, what)``, that decides what
happens when two dimensions must be equal.  At graph-build time ``static_meet`` is used
(``None`` meets anything); the compiler passes a unifying ``meet`` (see
``graphc.signature``) so that the same rules also tell which dynamic dimensions must
agree at call time.  One rule, two interpretations.
"""

from __future__ import annotations


class ShapeError(ValueError):
    """A graph whose shapes cannot fit together; raised while the graph is built."""


def static_meet(a, b, what):
    """Two dimensions that must be equal, at build time: ``None`` stands for any size."""
    if a is None:
        return b
    if b is None:
        return a
    if a != b:
        raise ShapeError(what())
    return a


def broadcast_shapes(op_name, shapes, meet=static_meet):
    """NumPy broadcasting of several shapes; a ``None`` dimension counts as "not 1"."""
    first = shapes[0]
    if meet is static_meet:         # fast path: equal shapes (most nodes)
        for s in shapes:
            if s != first:
                break
        else:
            return tuple(first)
    ndim = max(len(s) for s in shapes)
    padded = [(1,) * (ndim - len(s)) + tuple(s) for s in shapes]

    def what():
        shown = " and ".join(format_shape(s) for s in shapes)
        return f"{op_name}: shapes {shown} cannot be broadcast together"

    out = []
    for dims in zip(*padded):
        result = 1
        for d in dims:
            if isinstance(d, int) and d == 1:
                continue
            result = d if (isinstance(result, int) and result == 1) else meet(result, d, what)
        out.append(result)
    return tuple(out)


def normalize_axes(op_name, axis, ndim):
    """``axis`` (None, int or tuple) as a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    result = []
    for a in axes:
        if not isinstance(a, int) or isinstance(a, bool):
            raise TypeError(f"{op_name}: axis must be an int or a tuple of ints, got {axis!r}")
        if not -ndim <= a < ndim:
            raise ShapeError(f"{op_name}: axis {a} is out of range for an array of rank {ndim}")
        result.append(a % ndim)
    if len(set(result)) != len(result):
        raise ShapeError(f"{op_name}: repeated axis in {axis!r}")
    return tuple(sorted(result))


def format_shape(shape):
    """A shape as people write it, with ``?`` for dynamic dimensions: ``(?, 784)``."""
    dims = ["?" if d is None else str(d) for d in shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def check_shape_arg(op_name, shape, allow_none=True):
    """A user-supplied target shape as a tuple of ints (and ``None``)."""
    if isinstance(shape, int):
        shape = (shape,)
    try:
        shape = tuple(shape)
    except TypeError:
        raise TypeError(f"{op_name}: shape must be a tuple of ints, got {shape!r}") from None
    for d in shape:
        ok = (d is None and allow_none) or (isinstance(d, int) and not isinstance(d, bool) and d >= -1)
        if not ok:
            raise TypeError(f"{op_name}: shape must hold non-negative ints"
                            f"{' or None' if allow_none else ''}, got {shape!r}")
    return shape
