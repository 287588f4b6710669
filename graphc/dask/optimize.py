"""Full-batch ``scipy.optimize.minimize`` over chunked data.

SciPy drives the iterations on the client; each evaluation of the objective is one
distributed ``value_and_grad`` (the data were persisted on the cluster once, so an
iteration moves only the parameters out and the reduced gradient back)."""

from __future__ import annotations

import numpy as np

from .cluster import session
from .gradient import check_call, gradient_graph, row_chunked


def minimize(fn, x0, *data, method="L-BFGS-B", reduce="mean", client=None, split_every=8,
             **options):
    """Minimise the reduced value of `fn` (see ``value_and_grad``) over `data`,
    starting from the parameters `x0` (a list of arrays in `fn`'s parameter order, or
    one array for one parameter), with ``scipy.optimize.minimize(..., jac=True,
    method=method, **options)``.

    Returns SciPy's ``OptimizeResult``, with ``params``: the solution as arrays of the
    parameters' shapes and dtypes (``x`` is it flattened to one float64 vector)."""
    from scipy.optimize import minimize as scipy_minimize

    x0 = [x0] if isinstance(x0, np.ndarray) else list(x0)
    params = check_call(fn, data, x0)
    shapes = [p.shape for p in params]
    bounds = np.cumsum([0] + [p.size for p in params])

    def unflatten(flat):
        return [flat[a:b].reshape(shape) for a, b, shape in zip(bounds, bounds[1:], shapes)]

    with session(client) as c:
        arrays = c.persist(row_chunked(data))        # the data go to the cluster once

        def objective(flat):
            graph = gradient_graph(fn, arrays, unflatten(flat), reduce, split_every)
            value, grads = c.compute(graph).result()
            return float(value), np.concatenate([np.ravel(g) for g in grads]).astype(np.float64)

        result = scipy_minimize(objective, np.concatenate([p.ravel() for p in params])
                                .astype(np.float64), jac=True, method=method, **options)
    result.params = [p.astype(x.dtype) for p, x in
                     zip(unflatten(result.x), fn.inputs[len(data):])]
    return result
