"""Reductions in fused 1-D loops go to partial results (schedule.LANES per chunk of
schedule.CHUNK elements), so LLVM vectorises the loop without fastmath, and
``parallel=True`` runs loops on threads only when they are big enough
(schedule.PARALLEL_MIN): the same numbers either way, bit for bit."""

import math
import re

import numba
import numpy as np
import pytest

import graphc as gc
from graphc.codegen.schedule import CHUNK, LANES, PARALLEL_MIN


def _w4():
    x, t = gc.vector("x"), gc.vector("t")
    w, b = gc.scalar("w"), gc.scalar("b")
    c = gc.sum(gc.softplus(-t * (w * x + b)))
    return [x, t, w, b], [c] + gc.grad(c, [w, b, x])


def _w4_values(n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(n), np.sign(rng.standard_normal(n)), 0.7, 0.1]


def _kernel_source(fn):
    return fn.source[fn.source.index("def _kernel"):fn.source.index("def check_args")]


@pytest.fixture(scope="module")
def w4():
    inputs, outputs = _w4()
    return (inputs, outputs, gc.compile(inputs, outputs),
            gc.compile(inputs, outputs, parallel=True))


@pytest.mark.parametrize("n", [0, 1, 7, LANES - 1, LANES + 3, CHUNK + 5, PARALLEL_MIN + 1001])
def test_w4_parallel_equals_serial_and_reference(w4, n):
    inputs, outputs, serial, parallel = w4
    values = _w4_values(n)
    got_s, got_p = serial(*values), parallel(*values)
    for a, b in zip(got_s, got_p):
        assert np.array_equal(a, b)                          # bit for bit
    want = gc.evaluate(outputs, dict(zip(inputs, values)))
    for g, w in zip(got_s, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)
    # the sums are exact to a few ulp of their magnitude (the partial results do not
    # lose accuracy against the sequential order)
    x, t, wv, bv = values
    m = -t * (wv * x + bv)
    exact = math.fsum(np.logaddexp(0.0, m))
    assert abs(got_s[0] - exact) <= 1e-14 * max(1.0, np.abs(np.logaddexp(0.0, m)).sum())


def test_parallel_source_chooses_threads_by_size(w4):
    _, _, serial, parallel = w4
    src = _kernel_source(parallel)
    # a dynamic size: a test in the kernel picks prange or range
    assert f"if n0 >= {PARALLEL_MIN}:" in src and "numba.prange(" in src
    assert "numba.prange" not in _kernel_source(serial)
    # only explicit prange loops become parallel regions
    assert "'numpy': False" in parallel.source and "'prange': True" in parallel.source
    # partial results, folded in a fixed order
    assert f"np.full({LANES}, 0.0" in src


def test_small_static_loops_stay_serial():
    a = gc.tensor("a", (64, 128))
    f = gc.sum(gc.tanh(a) * a)
    fn = gc.compile([a], [f, gc.grad(f, a)], parallel=True)
    assert "prange" not in _kernel_source(fn)
    big = gc.tensor("big", (1024, 1024))
    g = gc.sum(gc.exp(big), axis=1)
    fn_big = gc.compile([big], [g], parallel=True)
    src = _kernel_source(fn_big)
    assert "numba.prange(1024)" in src and "if " not in src   # static: decided at codegen
    x = np.random.default_rng(1).standard_normal((1024, 1024))
    np.testing.assert_allclose(fn_big(x)[0], np.exp(x).sum(axis=1), rtol=1e-12)


def test_lane_sums_vectorise_without_fastmath(w4):
    _, _, serial, _ = w4
    kernel = serial.kernel
    options = {k: v for k, v in kernel.targetoptions.items() if k not in ("nopython", "cache")}
    fresh = numba.njit(**options)(kernel.py_func)
    args = [np.asarray(v) if np.ndim(v) else float(v) for v in _w4_values(1000)]
    fresh(*args, *[np.ones(1)] * (kernel.py_func.__code__.co_argcount - 4))
    ir = fresh.inspect_llvm(fresh.signatures[0])
    assert re.search(r"fadd <\d+ x double>", ir)
    assert "fast" not in re.findall(r"fadd (\w+ )*<\d+ x double>", ir)[0]


@pytest.mark.parametrize("parallel", [False, True])
def test_lane_reductions_keep_nan_inf_and_order_free_results(parallel):
    v = gc.vector("v")
    outs = [gc.sum(v), gc.max(v), gc.min(v), gc.sum(v * v, keepdims=True)]
    fn = gc.compile([v], outs, parallel=parallel)
    n = PARALLEL_MIN + 12345
    x = np.random.default_rng(2).standard_normal(n)
    s, mx, mn, sq = fn(x)
    assert s == pytest.approx(math.fsum(x), abs=1e-10)
    assert (mx, mn) == (x.max(), x.min())
    assert sq.shape == (1,) and sq[0] == pytest.approx(math.fsum(x * x), rel=1e-13)
    for bad, want_sum in [(np.nan, "nan"), (np.inf, "inf")]:
        y = x.copy()
        y[n - 3] = bad
        s, mx, mn, sq = fn(y)
        assert (np.isnan(s) if want_sum == "nan" else s == np.inf)
        assert np.isnan(mx) == (want_sum == "nan") and np.isnan(mn) == (want_sum == "nan")
    y = x.copy()
    y[5], y[n - 5] = np.inf, -np.inf
    assert np.isnan(fn(y)[0])
    assert fn(np.zeros(0))[0] == 0.0


def test_float32_lane_sum_is_accurate():
    v = gc.tensor("v", (None,), "float32")
    fn = gc.compile([v], [gc.sum(v)])
    x = np.random.default_rng(3).random(1_000_003).astype(np.float32)
    (got,) = fn(x)
    assert np.asarray(got).dtype == np.float32
    exact = math.fsum(x.astype(np.float64))
    # sequential float32 accumulation is off by 8.5e-6 relative here; partials by far less
    assert abs(float(got) - exact) <= 2e-6 * exact
