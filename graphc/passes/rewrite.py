"""The one rewriting mechanism every pass uses: rebuild a graph bottom-up, letting a
rule replace any node once its arguments have been rewritten.

Because nodes are hash-consed, rebuilding an unchanged node returns the very same
node, so a pass that changes nothing returns the original graph."""

from __future__ import annotations

from ..autodiff import ADJOINT_OF, GRADIENT_OF
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
    _carry_records(new)
    return [new[o] for o in outputs]


def _carry_records(new):
    """Autodiff's records (which forward node an adjoint belongs to, which cost and
    input a gradient is of) follow the nodes a pass rebuilt, so generated code can
    still say what each backward statement computes."""
    for old, node in new.items():
        if node is old:
            continue
        forward = ADJOINT_OF.get(old)
        if forward is not None and node not in ADJOINT_OF and not (node.is_input or node.is_const):
            ADJOINT_OF[node] = new.get(forward, forward)
        record = GRADIENT_OF.get(old)
        if record is not None and node not in GRADIENT_OF and not (node.is_input or node.is_const):
            GRADIENT_OF[node] = (new.get(record[0], record[0]), record[1])
