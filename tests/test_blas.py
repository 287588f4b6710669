"""graphc/blas.py: the BLAS pool that compiled code uses (SciPy's OpenBLAS) runs with
GRAPHC_BLAS_THREADS threads (default 1), NumPy's is left alone."""

import pytest

from graphc import blas


def _threads():
    return [lib.num_threads for lib in blas.compiled_code_pools()]


def test_compiled_code_pool_is_limited(monkeypatch):
    pools = blas.compiled_code_pools()
    if not pools:
        pytest.skip("SciPy and NumPy share one BLAS here: nothing to coordinate")
    from threadpoolctl import ThreadpoolController
    ours = {p.filepath for p in pools}

    def others():
        return [lib.num_threads for lib in ThreadpoolController().lib_controllers
                if lib.user_api == "blas" and lib.filepath not in ours]
    numpy_before = others()
    try:
        monkeypatch.setenv("GRAPHC_BLAS_THREADS", "2")
        blas.coordinate(force=True)
        assert _threads() == [2] * len(pools)
        monkeypatch.delenv("GRAPHC_BLAS_THREADS")
        blas.coordinate(force=True)
        assert _threads() == [1] * len(pools)
        assert others() == numpy_before
    finally:
        blas.coordinate(force=True)


def test_bad_thread_count(monkeypatch):
    monkeypatch.setenv("GRAPHC_BLAS_THREADS", "many")
    with pytest.raises(ValueError, match="GRAPHC_BLAS_THREADS"):
        blas.threads()


def test_loading_the_runtime_coordinates():
    from graphc.codegen import runtime
    runtime.shared()
    assert all(n == blas.threads() for n in _threads())
