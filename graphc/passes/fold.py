"""Constant folding: a node whose arguments are all small constants becomes a constant,
computed with the op's own NumPy implementation (so the value is what evaluation
would have produced)."""

from __future__ import annotations

import numpy as np

from ..graph import const
from ..ops import OPS

#: Fold only results this small: a folded constant is baked into the generated module.
MAX_FOLDED_SIZE = 64


def fold_constants(node, args):
    if not args or not all(a.is_const for a in args) or OPS[node.op].shape_only:
        return None          # an op that reads only the shape of an argument stays
    if node.dtype.kind != "f" or any(d is None for d in node.shape):
        return None
    if int(np.prod(node.shape, dtype=np.int64)) > MAX_FOLDED_SIZE:
        return None
    with np.errstate(all="ignore"):
        value = OPS[node.op].impl(*[a.value for a in args], **node.kwargs)
    return const(np.asarray(value, dtype=node.dtype), node.dtype)
