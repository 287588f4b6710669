"""Reverse mode (``grad``) and forward mode (``jvp``) as graph-to-graph transforms.

``grad`` is backpropagation exactly as it is taught: walk the nodes in reverse
topological order; a node's adjoint is the sum, over its successors, of the
successor's adjoint times the local derivative.  Each node is visited once, so every
intermediate is computed once, and the result is an ordinary graph that can be
simplified, compiled, printed or differentiated again.
"""

from __future__ import annotations

import weakref

import numpy as np

from . import api
from .graph import Expr, as_expr, const, expr_list, toposort
from .ops import OPS, unbroadcast

#: adjoint node -> the forward node it is the adjoint of, and gradient result ->
#: (cost, wrt): what generated code says about its backward statements.  Weak, so the
#: records go with the graphs.  (A node shared by two gradients keeps its first record.)
ADJOINT_OF: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
GRADIENT_OF: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _record(table, node, value):
    if not (node.is_input or node.is_const) and node not in table:
        table[node] = value


def _zeros_like(node):
    """A zero array of the node's shape (dynamic dimensions included)."""
    zero = const(np.zeros((1,) * node.ndim, dtype=node.dtype))
    return zero if node.ndim == 0 else api.broadcast_like(zero, node)


def _scaled(adjoint, partial):
    if isinstance(partial, (int, float)) and partial == 1:
        return adjoint
    if isinstance(partial, (int, float)) and partial == -1:
        return -adjoint
    return adjoint * partial


def _as_dtype(contribution, node):
    if contribution.dtype != node.dtype:
        return api.astype(contribution, node.dtype)
    return contribution


def elementwise_vjp(F, op, g, out, args, wanted):
    """Adjoint contributions of an elementwise op: g * d out/d arg, summed over the axes
    that broadcasting stretched.  Shared by ``grad`` and the tape."""
    contributions = []
    for i, arg in enumerate(args):
        rule = op.partials[i]
        if not wanted[i] or rule is None:
            contributions.append(None)
            continue
        c = _scaled(g, rule(F, out, *args))
        contributions.append(unbroadcast(F, c, getattr(arg, "shape", ())))
    return contributions


def _local_vjp(node, g, wanted):
    op = OPS[node.op]
    if op.kind == "elementwise":
        return elementwise_vjp(api, op, g, node, node.args, wanted)
    return op.vjp(api, g, node, *node.args, **node.kwargs)


def _dependents(order, sources):
    """The nodes of `order` whose value depends, differentiably, on any of `sources`."""
    reached = set(sources)
    for node in order:
        if node.args and node not in reached:
            op = OPS[node.op]
            if any(a in reached and op.differentiable_in(i) for i, a in enumerate(node.args)):
                reached.add(node)
    return reached


def grad(cost, wrt):
    """Gradient graphs of a scalar `cost` with respect to each node in `wrt`.

    Returns one ``Expr`` for a single `wrt`, else a list.  Each gradient has the shape
    and dtype of its `wrt` node, and is zero where the cost does not depend on it."""
    if not isinstance(cost, Expr):
        raise TypeError(f"grad: cost must be a graphc expression, got {type(cost).__name__}")
    if cost.shape != ():
        raise ValueError(f"grad: the cost must be a scalar (shape ()), got shape {cost.shape}; "
                         "reduce it first, e.g. gc.sum(cost) or gc.mean(cost)")
    single, wrt_list = expr_list(wrt, "grad", "wrt")
    for w in wrt_list:
        if w.dtype.kind != "f":
            what = f"input {w.name!r}" if w.is_input else repr(w)
            raise TypeError(f"grad: {what} has dtype {w.dtype}; only float values are "
                            "differentiated (integer and bool data are labels, indices "
                            "and masks)")
    order = toposort([cost])
    live = _dependents(order, wrt_list)
    adjoints = {cost: [const(1.0, cost.dtype)]} if cost in live else {}
    wrt_set = set(wrt_list)
    for node in reversed(order):
        parts = adjoints.get(node)
        if not parts or not node.args:
            continue
        g = _sum(parts)
        _record(ADJOINT_OF, g, node)
        adjoints[node] = [g]
        wanted = [a in live for a in node.args]
        for arg, c in zip(node.args, _local_vjp(node, g, wanted)):
            if c is not None and arg in live:
                adjoints.setdefault(arg, []).append(_as_dtype(c, arg))
        if node not in wrt_set:
            del adjoints[node]          # free memory on long chains
    results = [_sum(adjoints[w]) if adjoints.get(w) else _zeros_like(w) for w in wrt_list]
    for w, r in zip(wrt_list, results):
        _record(GRADIENT_OF, r, (cost, w))
        _record(ADJOINT_OF, r, w)
    return results[0] if single else results


def _sum(parts):
    total = parts[0]
    for p in parts[1:]:
        total = total + p
    return total


def jvp(outputs, inputs, tangents):
    """Forward mode: the directional derivatives of `outputs` along `tangents`.

    ``tangents[i]`` is the direction for ``inputs[i]`` (an expression, number or array
    broadcastable to its shape).  Returns a list with one tangent per output."""
    _, outputs = expr_list(outputs, "jvp", "outputs")
    _, inputs = expr_list(inputs, "jvp", "inputs")
    tangents = list(tangents) if isinstance(tangents, (list, tuple)) else [tangents]
    if len(tangents) != len(inputs):
        raise ValueError(f"jvp: {len(inputs)} inputs but {len(tangents)} tangents")
    tangent = {}
    for x, t in zip(inputs, tangents):
        t = as_expr(t, x.dtype)
        tangent[x] = api.broadcast_to(t, x.shape) if t.shape != x.shape else t
    for node in toposort(outputs):
        if node in tangent or not node.args:
            continue
        op = OPS[node.op]
        arg_tangents = [tangent.get(a) if op.differentiable_in(i) else None
                        for i, a in enumerate(node.args)]
        if all(t is None for t in arg_tangents):
            continue
        tangent[node] = _local_jvp(node, arg_tangents)
    return [tangent[o] if o in tangent else _zeros_like(o) for o in outputs]


def _local_jvp(node, arg_tangents):
    op = OPS[node.op]
    if op.kind != "elementwise":
        return _as_dtype(op.jvp(api, arg_tangents, node, *node.args, **node.kwargs), node)
    terms = [_scaled(t, op.partials[i](api, node, *node.args))
             for i, t in enumerate(arg_tangents) if t is not None and op.partials[i] is not None]
    if not terms:
        return _zeros_like(node)
    total = _as_dtype(_sum(terms), node)
    if total.shape != node.shape:
        total = api.broadcast_like(_pad_rank(total, node.ndim), node)
    return total


def value_and_grad(cost, wrt):
    """``(cost, grad(cost, wrt))``: the value and its gradients, as graphs (compile
    them together and the forward sweep is shared)."""
    return cost, grad(cost, wrt)


def vjp(outputs, wrt, cotangents):
    """The vector-Jacobian products ``sum_k <cotangent_k, d outputs_k / d wrt>``: one
    graph per node of `wrt` (a list, or one Expr for a single `wrt`)."""
    _, outs = expr_list(outputs, "vjp", "outputs")
    cots = list(cotangents) if isinstance(cotangents, (list, tuple)) else [cotangents]
    if len(cots) != len(outs):
        raise ValueError(f"vjp: {len(outs)} outputs but {len(cots)} cotangents")
    total = None
    for o, c in zip(outs, cots):
        term = api.sum(o * as_expr(c, o.dtype)) if o.shape else o * as_expr(c, o.dtype)
        total = term if total is None else total + term
    return grad(total, wrt)


def jacobian(y, x):
    """d y / d x as a graph of shape ``y.shape + x.shape`` (one reverse sweep per
    element of y, whose shape must be static)."""
    if any(d is None for d in y.shape):
        raise ValueError(f"jacobian: y's shape {y.shape} must be static")
    if y.shape == ():
        return grad(y, x)
    flat = api.reshape(y, (-1,))
    rows = [grad(flat[i], x) for i in range(flat.shape[0])]
    return api.reshape(api.stack(rows, 0), tuple(y.shape) + tuple(x.shape)) \
        if None not in x.shape else api.stack(rows, 0)


def hessian(cost, x):
    """The matrix of second derivatives of a scalar cost: the Jacobian of its gradient,
    of shape ``x.shape + x.shape``."""
    return jacobian(grad(cost, x), x)


def _pad_rank(x, ndim):
    lead = ndim - x.ndim
    return api.expand_dims(x, tuple(range(lead))) if lead else x


__all__ = ["ADJOINT_OF", "GRADIENT_OF", "elementwise_vjp", "grad", "hessian", "jacobian", "jvp",
           "value_and_grad", "vjp"]
