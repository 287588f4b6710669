"""``gc.custom_op``: new ops beyond elementwise formulas.

A custom op is a NumPy implementation, a shape rule, an optional dtype rule, an
optional Numba implementation and a VJP written with graphc functions.  It joins the op
table like any built-in op, so it runs on ``gc.evaluate``, on the tape and in compiled
code, and its gradient is a graph (so it differentiates again):

* compiled code calls the ``njit=`` implementation directly (a ``Call`` lowering), or
  else the NumPy implementation through ``numba.objmode`` (correct, slower; compiling it
  warns once, naming the op);
* every backend checks the implementation's result against the shape and dtype rules
  and reports a wrong one with the op's name - never a bad read;
* forward mode uses ``defjvp`` when given; otherwise it is derived from the VJP, which
  is linear in the cotangent: ``J t = d/du <vjp(u), t>``.
"""

from __future__ import annotations

import hashlib
import inspect

import numpy as np

from . import api, tape
from .autodiff import grad
from .graph import Expr, tensor
from .lowering import Call, ObjMode
from .ops import OPS, Op, register
from .passes.rewrite import rewrite
from .shapes import format_shape


class CustomOp(Op):
    """An op made by ``gc.custom_op`` (``njit``: its Numba implementation or None)."""

    njit = None
    user_vjp = None
    user_jvp = None
    source_hash = ""

    @property
    def fingerprint(self):
        """Compiled code depends on the implementations: a changed function must not
        reuse machine code cached for the old one."""
        return self.source_hash


class CustomFunction:
    """What ``@gc.custom_op`` returns: call it to apply the op; ``defvjp``/``defjvp``
    attach its derivative rules."""

    def __init__(self, op):
        self.op = op
        self.__name__ = self.__qualname__ = op.name
        self.__doc__ = op.doc

    def __call__(self, *args):
        if len(args) != self.op.arity:
            raise TypeError(f"{self.op.name}() takes {self.op.arity} arguments, got {len(args)}")
        return api.apply(self.op.name, *args)

    def defvjp(self, fn):
        """``fn(g, out, *args) -> tuple``: one adjoint contribution per argument (None
        for an argument that gets none), written with graphc functions."""
        object.__setattr__(self.op, "user_vjp", fn)
        return fn

    def defjvp(self, fn):
        """``fn(tangents, out, *args) -> tangent of out`` (a tangent is None for an
        argument that has none), written with graphc functions."""
        object.__setattr__(self.op, "user_jvp", fn)
        return fn

    def __repr__(self):
        return f"<graphc custom op {self.op.name}>"


def custom_op(shape, dtype=None, njit=None, name=None):
    """Decorator making a NumPy function an op of graphc.

    `shape(*arg_shapes) -> shape` (shapes may hold None for dynamic dimensions);
    `dtype(*arg_dtypes) -> dtype` (default: the first argument's); `njit`: a
    ``numba.njit`` function with the same arguments, used by compiled code; `name`:
    the op's name (default: the function's)."""
    def wrap(fn):
        op_name = name or fn.__name__
        if not op_name.isidentifier():
            raise ValueError(f"custom_op: the op name must be an identifier, got {op_name!r}")
        if op_name in OPS:
            raise ValueError(f"custom_op: an op named {op_name!r} already exists; pass name=")
        arity = len([p for p in inspect.signature(fn).parameters.values()
                     if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)])
        op = CustomOp(name=op_name, kind="custom", arity=arity,
                      impl=_checked(op_name, fn, shape, dtype),
                      shape=lambda shapes, meet, **_: tuple(shape(*shapes)),
                      dtype=_dtype_rule(dtype), lowering=Call("") if njit else ObjMode(),
                      vjp=_vjp_rule(op_name), jvp=_jvp_rule(op_name),
                      doc=fn.__doc__ or f"custom op {op_name}")
        object.__setattr__(op, "njit", njit)
        object.__setattr__(op, "source_hash", _source_hash(fn, njit, shape, dtype))
        register(op)
        return CustomFunction(op)
    return wrap


def _source_hash(*functions):
    """A hash of the functions' source (or, where it cannot be read, their names)."""
    h = hashlib.sha256()
    for f in functions:
        f = getattr(f, "py_func", f)            # a Numba dispatcher's Python function
        try:
            text = inspect.getsource(f) if f is not None else ""
        except (OSError, TypeError):
            text = f"{getattr(f, '__module__', '')}.{getattr(f, '__qualname__', repr(f))}"
        h.update(text.encode())
    return h.hexdigest()[:16]


def _dtype_rule(dtype):
    def rule(dtypes, **_):
        return np.dtype(dtype(*dtypes)) if dtype is not None else dtypes[0]
    return rule


def _checked(name, fn, shape_rule, dtype_rule):
    """The implementation, checking what it returns against the op's rules: the same
    check on evaluate, the tape and (through objmode) compiled code."""
    def impl(*args):
        arrays = [np.asarray(a) for a in args]
        want_shape = tuple(shape_rule(*[a.shape for a in arrays]))
        want_dtype = _dtype_rule(dtype_rule)([a.dtype for a in arrays])
        out = np.asarray(fn(*arrays))
        if out.shape != want_shape:
            raise ValueError(f"custom op {name!r} returned an array of shape "
                             f"{format_shape(out.shape)}, but its shape rule gives "
                             f"{format_shape(want_shape)}")
        if out.dtype != want_dtype:
            raise TypeError(f"custom op {name!r} returned {out.dtype} data, but its dtype "
                            f"rule gives {want_dtype}")
        return out[()] if out.ndim == 0 else out
    return impl


# ---------------------------------------------------------------------------------
# Derivative rules: the user's VJP, on graphs or (wrapping arrays) on the tape
# ---------------------------------------------------------------------------------

def _user_rule(op_name, which):
    rule = getattr(OPS[op_name], which)
    if rule is None:
        kind = "VJP (defvjp)" if which == "user_vjp" else "derivative"
        raise TypeError(f"custom op {op_name!r} has no {kind}: it cannot be differentiated")
    return rule


def _vjp_rule(op_name):
    def vjp(F, g, out, *args):
        user_vjp = _user_rule(op_name, "user_vjp")
        if isinstance(g, Expr):
            contributions = user_vjp(g, out, *args)
            for i, (c, a) in enumerate(zip(contributions, args)):
                if c is not None and not _fits(api.shape_of(c), a.shape):
                    raise ValueError(f"custom op {op_name!r}: its VJP's contribution to "
                                     f"argument {i} has shape {format_shape(api.shape_of(c))}, "
                                     f"but the argument has {format_shape(a.shape)}")
        else:                               # the tape: NumPy values, run eagerly
            wrapped = [tape.Tensor(v) for v in (g, out, *args)]
            contributions = [None if c is None else np.asarray(getattr(c, "data", c))
                             for c in user_vjp(*wrapped)]
        contributions = tuple(contributions)
        if len(contributions) != len(args):
            raise ValueError(f"custom op {op_name!r}: its VJP returned {len(contributions)} "
                             f"contributions for {len(args)} arguments")
        return contributions
    return vjp


def _fits(shape, like):
    """Same rank, and equal wherever both dimensions are known."""
    return len(shape) == len(like) and all(
        a is None or b is None or a == b for a, b in zip(shape, like))


def _jvp_rule(op_name):
    def jvp(F, tangents, out, *args):
        op = OPS[op_name]
        if op.user_jvp is not None:
            return op.user_jvp(tangents, out, *args)
        return _jvp_from_vjp(op_name, tangents, out, args)
    return jvp


def _jvp_from_vjp(op_name, tangents, out, args):
    """J t from the VJP, which is linear in its cotangent u: the gradient with respect
    to u of sum_i <vjp_i(u), t_i>, with u then replaced by zeros (the result does not
    depend on u's value, only, perhaps, on its shape)."""
    u = tensor("cotangent", out.shape, out.dtype)
    contributions = _user_rule(op_name, "user_vjp")(u, out, *args)
    terms = [api.sum(c * t) for c, t in zip(contributions, tangents)
             if c is not None and t is not None]
    if not terms:
        return None
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    zeros = api.const(np.zeros((1,) * out.ndim, out.dtype))
    if out.ndim:
        zeros = api.broadcast_like(zeros, out)
    (tangent,) = rewrite([grad(total, u)], lambda node, _: zeros if node is u else None)
    return tangent


__all__ = ["CustomFunction", "CustomOp", "custom_op"]
