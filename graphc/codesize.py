"""A bound on straight-line code (issue 15, item 4).

Every node of a compiled graph that is not inside a ``gc.scan`` body becomes straight-line
code in one Numba function, and Numba's compile time (and memory: type inference, then
LLVM) grows faster than linearly in that function's size.  A vanilla RNN unrolled over
T = 50 steps took 38 s to compile; at T = 500 the process grew to 24 GB.  Scalar graphs
past ``interp.MIN_STATEMENTS`` escape to the register-machine interpreter; array graphs
have no such escape, so their size is estimated here, before Numba sees the source,
and past a limit `compile` raises `KernelTooLarge` naming the size and pointing to
``gc.scan``.

The estimate is in *scalar-statement units* from the schedule: a scalar statement is 1;
an array statement (a fused loop nest, a matrix product, a view, a call) costs what
Numba spends typing and lowering it, measured at about ``ARRAY_WEIGHT`` scalar ones
(each fused loop member adds its own statement inside the nest).
"""

from __future__ import annotations

import os

#: What one array statement (a loop nest, a BLAS call, a view, ...) costs Numba,
#: in scalar statements (measured: an unrolled (2, 4) RNN over 40 steps, 318 array
#: statements, took 49 s on a busy 2-core machine; 1,000 scalar ones take a few seconds).
ARRAY_WEIGHT = 25

#: The default limit, in scalar-statement units: about 1,000 array statements, a few
#: minutes of Numba at most (the largest kernels of the tests are a fifth of it).
#: ``GRAPHC_MAX_KERNEL_SIZE`` overrides it (0: no limit).
DEFAULT_LIMIT = 25_000


class KernelTooLarge(ValueError):
    """The straight-line kernel of a graph is past the size Numba compiles in about a
    minute: write the repeated part with ``gc.scan`` / ``gc.fori_loop``."""


def limit():
    value = os.environ.get("GRAPHC_MAX_KERNEL_SIZE")
    if value is None or value.strip() == "":
        return DEFAULT_LIMIT
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"GRAPHC_MAX_KERNEL_SIZE must be an int, got {value!r}") from None


def estimate(plan):
    """(size, scalar statements, array statements) of a schedule's straight-line code."""
    from .codegen.schedule import Loop
    scalar = array = 0
    for st in plan.program:
        if isinstance(st, Loop):
            array += 1
            scalar += len(st.members) + len(st.sinks)
        elif plan.shapes.get(st.node, ()) == ():
            scalar += 1
        else:
            array += 1
    return scalar + ARRAY_WEIGHT * array, scalar, array


def check(plan):
    """Raise `KernelTooLarge` if the schedule's straight-line code is past the limit."""
    bound = limit()
    if bound <= 0:
        return
    size, scalar, array = estimate(plan)
    if size > bound:
        raise KernelTooLarge(
            f"compile: the graph unrolls into straight-line code of estimated size {size:,} "
            f"({array:,} array statements x {ARRAY_WEIGHT} + {scalar:,} scalar ones), past "
            f"the limit of {bound:,} (about 1,000 array statements, minutes of Numba); compile "
            "time and memory grow faster than linearly beyond it.  Write the repeated part as a "
            "loop that compiles once, with gc.scan or gc.fori_loop (a Python loop over "
            "steps unrolls every step into the graph), or raise the limit with "
            "GRAPHC_MAX_KERNEL_SIZE=<size> (0: none)")
