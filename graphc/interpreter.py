"""``gc.evaluate``: the reference interpreter, running any graph with NumPy.

It checks its arguments with the same generated checker as compiled Functions, then
evaluates each node once, in topological order, with the op table's NumPy
implementation, dropping values as soon as no later node needs them."""

from __future__ import annotations

import numpy as np

from .graph import Expr, expr_list, toposort
from .ops import OPS
from .signature import Signature


def run_graph(outputs, env, order=None):
    """Evaluate `outputs` given values for the nodes in `env` (a dict it extends);
    `order` is their topological order when the caller has it already."""
    order = [n for n in (order or toposort(outputs)) if n not in env]
    last_use = {}
    for i, node in enumerate(order):
        for a in node.args:
            last_use[a] = i
    keep = set(outputs)
    with np.errstate(all="ignore"):
        for i, node in enumerate(order):
            if node.is_const:
                env[node] = node.value
                continue
            impl = OPS[node.op].impl
            args = [env[a] for a in node.args]
            value = impl(*args, **node.kwargs) if node.params else impl(*args)
            if getattr(value, "dtype", None) != node.dtype:     # NumPy scalars are fine
                value = np.asarray(value, dtype=node.dtype)
            env[node] = value
            for a in node.args:
                if last_use[a] == i and a not in keep and not a.is_input:
                    env.pop(a, None)
    return [env[o] for o in outputs]


def as_result(value):
    """A caller-owned result: a fresh array, or a NumPy scalar for shape ()."""
    arr = np.array(value, copy=True)
    return arr[()] if arr.ndim == 0 else arr


def evaluate(outputs, feed):
    """Values of `outputs` given ``{input: value}``: a tuple for a list of outputs, a
    single value for one expression."""
    single, outs = expr_list(outputs, "evaluate", "outputs")
    if not isinstance(feed, dict):
        raise TypeError(f"evaluate: feed must be a dict {{input: value}}, got {type(feed).__name__}")
    for k in feed:
        if not (isinstance(k, Expr) and k.is_input):
            raise TypeError(f"evaluate: feed keys must be inputs, got {k!r}")
    order = toposort(outs)
    needed = [n for n in order if n.is_input]
    missing = [x.name for x in needed if x not in feed]
    if missing:
        raise ValueError(f"evaluate: no value given for input(s) {missing}")
    check_args = Signature.build(needed, outs, all_nodes=False).make_checker()
    env = dict(zip(needed, (np.asarray(v) for v in check_args(*(feed[x] for x in needed)))))
    values = [as_result(v) for v in run_graph(outs, env, order)]
    return values[0] if single else tuple(values)
