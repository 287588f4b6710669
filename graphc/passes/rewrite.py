"""The one rewriting mechanism every pass uses: rebuild a graph bottom-up, letting a
rule replace any node once its arguments have been rewritten.

Because nodes are hash-consed, rebuilding an unchanged node returns the very same
node, so a pass that changes nothing returns the original graph."""

from __future__ import annotations

from ..graph import apply, toposort


def rebuild(node, args):
    """`node` with new arguments (the same node when the arguments did not change)."""
    if all(a is b for a, b in zip(args, node.args)):
        return node
    return apply(node.op, tuple(args), **node.kwargs)


def rewrite(outputs, rule):
    """Apply ``rule(node, args) -> Expr | None`` to every node, arguments first.

    `args` are the already-rewritten arguments; returning ``None`` keeps the node
    (rebuilt over `args`).  A rule may return a node built from `args`, which is then
    taken as is.  Returns the rewritten outputs, in order."""
    new = {}
    for node in toposort(outputs):
        args = [new[a] for a in node.args]
        replacement = rule(node, args)
        new[node] = replacement if replacement is not None else rebuild(node, args)
    return [new[o] for o in outputs]
