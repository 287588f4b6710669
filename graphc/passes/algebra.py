"""Algebraic identities, each a small rule that keeps values equal.

A rule fires only when the result has the node's exact shape and dtype, so a
rewrite never changes what broadcasting produced.  Rules that would be wrong for some
inputs are absent on purpose: ``x * 0`` is not 0 when x may be inf or NaN, and
``exp(log(x))`` is not x when x <= 0.  ``log(exp(x))`` is x for every finite x."""

from __future__ import annotations

from .. import api
from ..graph import const


def _scalar_const(e):
    """The value of a shape-() constant, else None."""
    return float(e.value) if e.is_const and e.shape == () else None


def _same(node, x):
    """`x` may replace `node` only if it has the same shape and dtype."""
    return x if (x.shape == node.shape and x.dtype == node.dtype) else None


def _mul(node, a, b):
    ca, cb = _scalar_const(a), _scalar_const(b)
    if cb == 1.0:
        return _same(node, a)
    if ca == 1.0:
        return _same(node, b)
    if cb == -1.0:
        return _same(node, api.neg(a))
    if ca == -1.0:
        return _same(node, api.neg(b))
    if a is b:
        return api.square(a)
    if a.op == "neg" and b.op == "neg":
        return api.mul(a.args[0], b.args[0])
    return None


def _add(node, a, b):
    if _scalar_const(b) == 0.0:
        return _same(node, a)
    if _scalar_const(a) == 0.0:
        return _same(node, b)
    if b.op == "neg":
        return api.sub(a, b.args[0])
    if a.op == "neg":
        return api.sub(b, a.args[0])
    return None


def _sub(node, a, b):
    if _scalar_const(b) == 0.0:
        return _same(node, a)
    if _scalar_const(a) == 0.0:
        return _same(node, api.neg(b))
    if b.op == "neg":
        return api.add(a, b.args[0])
    return None


def _div(node, a, b):
    cb = _scalar_const(b)
    if cb == 1.0:
        return _same(node, a)
    if cb == -1.0:
        return _same(node, api.neg(a))
    return None


def _neg(node, a):
    if a.op == "neg":
        return a.args[0]
    return None


def _pow(node, a, b):
    p = _scalar_const(b)
    if p is None:
        return None
    replacement = {1.0: lambda: a, 2.0: lambda: api.square(a),
                   3.0: lambda: api.square(a) * a, 4.0: lambda: api.square(api.square(a)),
                   0.5: lambda: api.sqrt(a), -1.0: lambda: const(1.0, a.dtype) / a}.get(p)
    return _same(node, replacement()) if replacement else None


def _log(node, a):
    if a.op == "exp":
        return a.args[0]
    return None


def _identity_view(node, a):
    """transpose by the identity permutation, reshape or broadcast_to a shape the
    argument already has: the argument itself."""
    params = node.kwargs
    if node.op == "transpose" and params["axes"] != tuple(range(a.ndim)):
        return None
    return _same(node, a)


RULES = {"transpose": _identity_view, "reshape": _identity_view,
         "broadcast_to": _identity_view, "mul": _mul, "add": _add, "sub": _sub, "div": _div, "neg": _neg, "pow": _pow,
         "log": _log}


def simplify(node, args):
    rule = RULES.get(node.op)
    if rule is None:
        return None
    from .rewrite import rebuild
    rebuilt = rebuild(node, args)
    return rule(rebuilt, *args)
