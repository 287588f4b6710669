"""One BLAS pool that behaves on a shared machine.

Numba's ``np.dot`` (graphc's compiled matrix products) calls SciPy's OpenBLAS, while
NumPy's ``@`` calls NumPy's own copy: two libraries, two thread pools.  OpenBLAS workers
busy-wait for work after each call, so on a machine with few cores the two pools' spinning
threads, Numba's threading layer and any other process starve each other (measured on 2
cores: a compiled MLP step beside a NumPy product cost 32x the step, and a training epoch
beside one busy process 3.1x the quiet one).

graphc therefore runs the pool its compiled code uses - SciPy's OpenBLAS - with
``GRAPHC_BLAS_THREADS`` threads (default 1: graphc's products are small; on the shared
2-core machine where this was measured, one thread made the W5 step 2-20x faster than
two; a quiet machine with large products may want more), set once through
threadpoolctl when the shared runtime is loaded.  NumPy's pool
is left to the user (``threadpoolctl.threadpool_limits`` limits it too).
``benchmarks/blas_pools.py`` measures both cases."""

from __future__ import annotations

import os

_done = False


def threads():
    """The thread count for the BLAS that compiled code calls."""
    value = os.environ.get("GRAPHC_BLAS_THREADS", "1")
    try:
        return max(1, int(value))
    except ValueError:
        raise ValueError(f"GRAPHC_BLAS_THREADS must be a positive integer, not {value!r}") from None


def compiled_code_pools():
    """threadpoolctl's controllers of the BLAS that compiled code calls when it is a
    copy of its own (SciPy's wheel bundles one in ``scipy.libs``; where SciPy and NumPy
    share one library, as in conda, there is one pool and nothing to coordinate)."""
    import scipy.linalg.cython_blas  # noqa: F401  (loads the library Numba calls)
    from threadpoolctl import ThreadpoolController
    return [lib for lib in ThreadpoolController().lib_controllers
            if lib.user_api == "blas"
            and os.path.basename(os.path.dirname(lib.filepath)) == "scipy.libs"]


def coordinate(force=False):
    """Limit the compiled code's BLAS pool to ``threads()`` threads (once per process)."""
    global _done
    if _done and not force:
        return
    _done = True
    try:
        pools = compiled_code_pools()
    except ImportError:             # no threadpoolctl or scipy: nothing to coordinate
        return
    n = threads()
    for lib in pools:
        lib.set_num_threads(n)
