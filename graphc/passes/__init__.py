"""Graph-to-graph passes, all built on one mechanism, ``rewrite``.

``optimize(outputs, level)`` is the pipeline the compiler runs:

* ``"none"`` - the graph exactly as autodiff built it (for debugging, and for tests
  that check the passes preserve values);
* ``"fast"`` and ``"full"`` - constant folding and algebraic identities, repeated to a
  fixed point (each round is linear in the graph size; rounds are capped).

Common subexpressions are shared by construction (nodes are hash-consed), and dead
code never reaches the code generator (it schedules only what the outputs need).
"""

from .algebra import simplify
from .fold import fold_constants
from .rewrite import rewrite

LEVELS = ("full", "fast", "none")
MAX_ROUNDS = 4


def _combined(node, args):
    folded = fold_constants(node, args)
    return folded if folded is not None else simplify(node, args)


def optimize(outputs, level="full"):
    if level not in LEVELS:
        raise ValueError(f"optimize must be one of {LEVELS}, got {level!r}")
    outputs = list(outputs)
    if level == "none":
        return outputs
    for _ in range(MAX_ROUNDS):
        new = rewrite(outputs, _combined)
        if all(a is b for a, b in zip(new, outputs)):
            break
        outputs = new
    return outputs


__all__ = ["LEVELS", "optimize", "rewrite"]
