"""graphc on Dask: compiled gradients over chunked arrays, and data-parallel training.

A compiled Function pickles as its generated source (``graphc.function``), so Dask can
ship it to worker processes and machines; everything here runs on an existing engine,
``dask.distributed``, not a scheduler of graphc's own:

* ``value_and_grad(fn, *data, params=..., reduce="sum"|"mean")`` maps a compiled
  value-and-gradient Function over the row chunks of Dask arrays and reduces the
  per-chunk results on the cluster (a tree of additions);
* ``minimize(fn, x0, *data)``: full-batch ``scipy.optimize.minimize`` over chunked data,
  one distributed gradient per evaluation;
* ``compile_step`` and ``train.fit(step, X, Y, client=...)``: synchronous data-parallel
  mini-batch training (each batch split across the workers, gradients averaged, one
  update) and local SGD (each worker steps on its part, parameters averaged every k
  steps).

Without a client, Dask's default client is used, or else an embedded
``LocalCluster`` of worker processes is started for the call and closed after it.

Dask is an optional dependency: ``pip install "graphc[dask]"``."""

try:
    import dask.array  # noqa: F401
    import distributed  # noqa: F401
except ImportError as exc:              # the message is the point: say how to get it
    raise ImportError('graphc.dask needs Dask with dask.distributed: '
                      f'pip install "graphc[dask]" ({exc})') from exc

from .cluster import session
from .gradient import value_and_grad
from .optimize import minimize
from .training import DataParallelStep, compile_step

__all__ = ["DataParallelStep", "compile_step", "minimize", "session", "value_and_grad"]
