"""Lowering: put a graph into the form the code generator handles directly.

Each op's lowering record (``graphc.lowering``, held by the op table) may replace a node
by a graph of other ops before scheduling: ``logsumexp`` becomes ``max`` + ``sum(exp(x -
max))`` + ``log``, ``numel`` over static dimensions a constant, a reduction over no axes
its argument.  The rewrites build nodes with ``graphc.api``, so what they make is an
ordinary graph (and is lowered in turn)."""

from __future__ import annotations

from .. import api
from ..ops import OPS
from .rewrite import rewrite


def _lower(node, args):
    if not node.args:               # inputs and constants
        return None
    lowering = OPS[node.op].lowering
    return None if lowering is None else lowering.rewrite(api, node, args)


def lower(outputs):
    return rewrite(outputs, _lower)


__all__ = ["lower"]
