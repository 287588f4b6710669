"""A compiled value-and-gradient Function mapped over the row chunks of Dask arrays.

The graph that ``value_and_grad`` builds: one task holding the Function and the
parameters (so each worker receives them once per call, not once per chunk), one task
per row chunk calling the Function on that chunk, and a tree of additions (fan-in
`split_every`) whose root also makes the result.  Only that result travels back to the
client; if any task fails, the call raises, and no partial sum is ever returned."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np

from ..function import Function
from . import reduce as reduction
from .cluster import session


def value_and_grad(fn, *data, params, reduce="sum", client=None, split_every=8):
    """The value and gradients that `fn` computes, over all rows of `data`.

    `fn` is a compiled Function whose inputs are the data, then the parameters, and
    whose outputs are the value, then one gradient per parameter (``gc.compile([X, y,
    w, b], [loss, *gc.grad(loss, [w, b])])``).  `data` are Dask (or NumPy) arrays with
    the same number of rows, chunked along rows only (chunk sizes may differ: the
    batch dimension is dynamic); `params` their parameter values.  ``reduce="sum"``
    adds the per-chunk results (a cost that sums over rows); ``"mean"`` weighs each by
    its row count (a cost that is a mean over rows), so the result equals one call on
    all the rows.  Returns ``(value, [gradients])``.

    Runs on `client`, else Dask's default client, else an embedded LocalCluster.
    Arrays made from NumPy data travel with every call: persist them first
    (``client.persist``) when calling repeatedly — ``minimize`` does."""
    graph = gradient_graph(fn, data, params, reduce, split_every)
    with session(client) as c:
        return c.compute(graph).result()


def gradient_graph(fn, data, params, reduce="sum", split_every=8):
    """The Delayed ``(value, [gradients])`` of ``value_and_grad``."""
    params = check_call(fn, data, params)
    reduction.check_reduce(reduce)
    if split_every < 2:
        raise ValueError(f"graphc.dask: split_every must be at least 2, got {split_every}")
    arrays = row_chunked(data)
    shared = dask.delayed(_shared, pure=False)(fn, params)
    parts = [dask.delayed(_chunk, pure=False)(shared, reduce, *blocks)
             for size, *blocks in zip(arrays[0].chunks[0],
                                      *(a.to_delayed().reshape(-1) for a in arrays))
             if size > 0]
    if not parts:
        raise ValueError("graphc.dask: the data have no rows")
    while len(parts) > split_every:
        parts = [dask.delayed(reduction.add, pure=False)(*parts[i:i + split_every])
                 for i in range(0, len(parts), split_every)]
    dtypes = [o.dtype for o in fn.outputs]
    return dask.delayed(_finish, pure=False)(reduce, dtypes, *parts)


def check_call(fn, data, params):
    """Refuse, on the client and before any task runs, a call that cannot fit `fn`."""
    if not isinstance(fn, Function):
        raise TypeError(f"graphc.dask: expected a compiled graphc.Function, got "
                        f"{type(fn).__name__}")
    if not data:
        raise TypeError("graphc.dask: no data arrays given")
    params = list(params)
    if len(fn.inputs) != len(data) + len(params):
        raise TypeError(f"graphc.dask: the Function has {len(fn.inputs)} inputs "
                        f"({', '.join(x.name for x in fn.inputs)}), but {len(data)} data "
                        f"arrays and {len(params)} parameters were given")
    if fn.single or len(fn.outputs) != 1 + len(params):
        raise TypeError(f"graphc.dask: the Function must return the value and one gradient "
                        f"per parameter ({1 + len(params)} outputs as a tuple), it returns "
                        f"{'one value' if fn.single else f'{len(fn.outputs)} outputs'}")
    checked = []
    for x, value in zip(fn.inputs[len(data):], params):
        value = np.asarray(value, dtype=x.dtype)
        if value.shape != x.shape:
            raise ValueError(f"graphc.dask: parameter {x.name!r} has shape {value.shape}, "
                             f"the Function expects {x.shape}")
        checked.append(value)
    return checked


def row_chunked(data):
    """The data as Dask arrays with the same row chunks (those of the first Dask
    array) and one chunk along every other axis."""
    if any(np.ndim(a) == 0 for a in data):
        raise ValueError("graphc.dask: data arrays must have at least one dimension (rows)")
    rows = {np.shape(a)[0] for a in data}
    if len(rows) > 1:
        raise ValueError(f"graphc.dask: the data arrays have different numbers of rows: "
                         f"{[np.shape(a)[0] for a in data]}")
    first = next((a for a in data if isinstance(a, da.Array)), None)
    row_chunks = first.chunks[0] if first is not None else (len(data[0]),)
    if any(np.isnan(c) for c in row_chunks):
        raise ValueError("graphc.dask: the row chunk sizes are unknown; call "
                         "compute_chunk_sizes() on the arrays first")
    return [da.asarray(a).rechunk({0: row_chunks, **{axis: -1 for axis in range(1, np.ndim(a))}})
            for a in data]


def _shared(fn, params):
    """The task every chunk depends on: Dask moves its result to each worker once."""
    return fn, params


def _chunk(shared, reduce, *blocks):
    fn, params = shared
    return reduction.partial(len(blocks[0]), fn(*blocks, *params), reduce)


def _finish(reduce, dtypes, *parts):
    """The root of the tree: the last addition and the result, in one task."""
    value, *grads = reduction.finish(reduction.add(*parts), reduce, dtypes)
    return value, grads
