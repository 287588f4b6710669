"""Rewrites that put a graph into the form the code generator handles directly.

* ``logsumexp`` becomes ``max`` + ``sum(exp(x - max))`` + ``log``: two reductions the
  loop fuser already knows, and the numerically stable form.
* ``numel`` over static dimensions becomes a constant.
"""

from __future__ import annotations

import math

from .. import api
from ..graph import const
from ..passes import rewrite


def _lower(node, args):
    if node.op == "logsumexp":
        (x,) = args
        if x.dtype != node.dtype:           # bool or integer data: computed in float
            x = api.astype(x, node.dtype)
        axis, keepdims = node.kwargs["axis"], node.kwargs["keepdims"]
        m = api.max(x, axis=axis, keepdims=True)
        if not keepdims:    # summing over the size-1 axes of m drops them
            return api.log(api.sum(api.exp(x - m), axis=axis)) + api.sum(m, axis=axis)
        return api.log(api.sum(api.exp(x - m), axis=axis, keepdims=True)) + m
    if node.op == "numel":
        dims = [args[0].shape[a] for a in node.kwargs["axis"]]
        if all(isinstance(d, int) for d in dims):
            return const(float(math.prod(dims)), node.dtype)
    if node.op in ("sum", "max", "min") and not node.kwargs["axis"]:
        return args[0] if args[0].dtype == node.dtype else api.astype(args[0], node.dtype)
    return None


def lower(outputs):
    return rewrite(outputs, _lower)
