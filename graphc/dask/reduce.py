"""Adding up per-chunk values and gradients.

A chunk's outputs become float64 partial sums with the chunk's row count; partial sums
add in any order (a tree on the cluster, or a list on the client); ``finish`` turns
the total into the result.  With ``reduce="mean"`` the compiled cost is a mean over
its chunk's rows, so a chunk counts as many times as it has rows: the result is the
mean over all rows, whatever the chunk sizes, equal to one call on all the data."""

from __future__ import annotations

import functools

import numpy as np

REDUCTIONS = ("sum", "mean")


def check_reduce(reduce):
    if reduce not in REDUCTIONS:
        raise ValueError(f"graphc.dask: reduce must be one of {REDUCTIONS}, got {reduce!r}")


def partial(rows, outputs, reduce):
    """(rows, float64 sums) for one chunk's outputs."""
    weight = rows if reduce == "mean" else 1
    return rows, [np.asarray(o, dtype=np.float64) * weight for o in outputs]


def add(*parts):
    """The partial sum of several partial sums."""
    rows = sum(p[0] for p in parts)
    return rows, [functools.reduce(np.add, sums) for sums in zip(*(p[1] for p in parts))]


def finish(total, reduce, dtypes):
    """The outputs from the total partial sum, in their compiled dtypes (shape-() ones
    as NumPy scalars, like a Function's results)."""
    rows, sums = total
    if reduce == "mean":
        sums = [s / rows for s in sums]
    return [np.asarray(s).astype(dtype)[()] for s, dtype in zip(sums, dtypes)]
