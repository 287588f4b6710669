"""float32 graphs compute in float32 end to end (issue 17, item 2): constants are typed
to the loop's dtype (``c0 = np.float32(1.0)`` once per kernel), SymPy-optimised loop
bodies print their numbers the same way, helpers written with float64 literals are
converted back, and the compiled kernel's LLVM IR holds no float64 arithmetic; values
still agree with the reference interpreter."""

import re

import numba
import numpy as np
import pytest

import graphc as gc

DOUBLE_ARITHMETIC = re.compile(r"\bf(add|mul|sub|div|neg)( [a-z]+)* (<\d+ x )?double\b")


def _mlp(activation):
    """The README's float32 MLP, value and gradients."""
    X = gc.tensor("X", shape=(None, 784), dtype="float32")
    Y = gc.tensor("Y", shape=(None, 10), dtype="float32")
    W1, b1 = gc.tensor("W1", (784, 128), "float32"), gc.tensor("b1", (128,), "float32")
    W2, b2 = gc.tensor("W2", (128, 10), "float32"), gc.tensor("b2", (10,), "float32")
    act = {"sigmoid": gc.sigmoid, "relu": gc.relu, "tanh": gc.tanh}[activation]
    loss = gc.mean(gc.cross_entropy(act(X @ W1 + b1) @ W2 + b2, Y))
    params = [W1, b1, W2, b2]
    return [X, Y] + params, [loss] + gc.grad(loss, params)


def _values(B, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.random((B, 784), dtype=np.float32),
            np.eye(10, dtype=np.float32)[rng.integers(0, 10, B)],
            (rng.standard_normal((784, 128)) * 0.05).astype(np.float32),
            (rng.standard_normal(128) * 0.1).astype(np.float32),
            (rng.standard_normal((128, 10)) * 0.1).astype(np.float32),
            (rng.standard_normal(10) * 0.1).astype(np.float32)]


def _fresh_ir(fn, args):
    """The LLVM IR of `fn`'s kernel, compiled afresh (Numba does not show the IR of
    code it loaded from its disk cache), for the types of `args`."""
    kernel = fn.kernel
    options = {k: v for k, v in kernel.targetoptions.items() if k not in ("nopython", "cache")}
    fresh = numba.njit(**options)(kernel.py_func)
    fresh(*args)
    return fresh.inspect_llvm(fresh.signatures[0])


@pytest.mark.parametrize("activation", ["sigmoid", "relu", "tanh"])
@pytest.mark.parametrize("optimize", ["full", "fast"])
def test_float32_mlp_computes_in_float32(activation, optimize):
    inputs, outputs = _mlp(activation)
    fn = gc.compile(inputs, outputs, optimize=optimize)
    values = _values(32)
    ir = _fresh_ir(fn, values)
    doubles = [line.strip() for line in ir.splitlines() if DOUBLE_ARITHMETIC.search(line)]
    assert doubles == []
    assert re.search(r"<\d+ x float>", ir)          # the fused loops are vectorised
    # the source holds typed constants, and no float literal in arithmetic
    assert re.search(r"^    c\d+ = np\.float32\(1\.0\)$", fn.source, re.MULTILINE)
    kernel = fn.source[fn.source.index("def _kernel"):fn.source.index("def check_args")]
    code = [line.split("#")[0] for line in kernel.splitlines()]
    assert not [c for c in code if re.search(r"[-+*/] *\d+\.\d+|\d+\.\d+ *[-+*/]", c)]
    got = fn(*values)
    want = gc.evaluate(outputs, dict(zip(inputs, values)))
    for g, w in zip(got, want):
        assert np.asarray(g).dtype == np.float32
        np.testing.assert_allclose(g, w, rtol=2e-4, atol=1e-6)


def test_float32_results_are_float32_rounded():
    """Each float32 node is rounded to float32, as the interpreter rounds it: with
    float64 constants `x * 0.1 + 1` would be computed in float64 and round once."""
    x = gc.tensor("x", (None,), "float32")
    y = x * 0.1 + 1.0
    c = gc.sum(gc.exp(y) * 0.3)
    fn = gc.compile([x], [y, c, gc.grad(c, x)])
    xs = np.linspace(-3, 3, 1001).astype(np.float32)
    got_y, got_c, got_g = fn(xs)
    want_y, want_c, want_g = gc.evaluate([y, c, gc.grad(c, x)], {x: xs})
    assert got_y.dtype == np.float32 and got_g.dtype == np.float32
    np.testing.assert_array_equal(got_y, want_y)              # two roundings, bit for bit
    np.testing.assert_allclose(got_g, want_g, rtol=1e-6)
    assert got_c == pytest.approx(float(want_c), rel=1e-5)
    # the float64 rounding would differ from float32 arithmetic on many points
    once = (xs.astype(np.float64) * np.float32(0.1) + 1.0).astype(np.float32)
    assert (once != want_y).any()


def test_float32_scalar_graph_stays_float32():
    """Scalar statements too: constants and numel are float32."""
    a = gc.scalar("a", "float32")
    v = gc.tensor("v", (None,), "float32")
    f = gc.mean(v * a) * 3.0 + a / 7.0
    fn = gc.compile([a, v], [f, *gc.grad(f, [a, v])])
    args = (np.float32(1.7), np.linspace(0, 1, 9).astype(np.float32))
    ir = _fresh_ir(fn, args)
    assert not [line for line in ir.splitlines() if DOUBLE_ARITHMETIC.search(line)]
    got = fn(*args)
    want = gc.evaluate([f, *gc.grad(f, [a, v])], dict(zip([a, v], args)))
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-6)
