"""The compiler: results against the reference interpreter, calling conventions,
argument checking, export, the disk cache."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import graphc as gc


def mlp_graph(dtype, activation=gc.sigmoid):
    X = gc.tensor("X", (None, 6), dtype)
    Y = gc.tensor("Y", (None, 3), dtype)
    W1 = gc.tensor("W1", (6, 5), dtype)
    b1 = gc.tensor("b1", (5,), dtype)
    W2 = gc.tensor("W2", (5, 3), dtype)
    b2 = gc.tensor("b2", (3,), dtype)
    logits = activation(X @ W1 + b1) @ W2 + b2
    loss = gc.mean(gc.cross_entropy(logits, Y))
    params = [W1, b1, W2, b2]
    return [X, Y] + params, [loss] + gc.grad(loss, params)


def mlp_values(batch, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((batch, 6)).astype(dtype),
            np.eye(3, dtype=dtype)[rng.integers(0, 3, batch)],
            rng.standard_normal((6, 5)).astype(dtype) * 0.5,
            rng.standard_normal(5).astype(dtype) * 0.1,
            rng.standard_normal((5, 3)).astype(dtype) * 0.5,
            rng.standard_normal(3).astype(dtype) * 0.1]


@pytest.fixture(scope="module", params=["float32", "float64"])
def mlp(request):
    inputs, outputs = mlp_graph(request.param)
    return request.param, inputs, outputs, gc.compile(inputs, outputs)


@pytest.mark.parametrize("batch", [1, 7, 1000])
def test_mlp_matches_reference_for_any_batch(mlp, batch):
    dtype, inputs, outputs, fn = mlp
    values = mlp_values(batch, dtype)
    got = fn(*values)
    want = gc.evaluate(outputs, dict(zip(inputs, values)))
    tol = 1e-5 if dtype == "float32" else 1e-12
    for g, w in zip(got, want):
        assert g.dtype == np.dtype(dtype) and g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol)


def test_results_are_fresh_arrays(mlp):
    dtype, inputs, outputs, fn = mlp
    values = mlp_values(4, dtype)
    first = fn(*values)
    snapshot = [np.array(a, copy=True) for a in first]
    fn(*mlp_values(4, dtype, seed=1))
    for a, s in zip(first, snapshot):
        np.testing.assert_array_equal(a, s)


def test_worked_example_and_calling_conventions():
    x, y, z = gc.scalar("x"), gc.scalar("y"), gc.scalar("z")
    f = (x + y) * z
    fn = gc.compile([x, y, z], [f, *gc.grad(f, [x, y, z])])
    assert fn(-2.0, 5.0, -4.0) == (-12.0, -4.0, -4.0, 3.0)
    assert fn(x=-2, y=5, z=-4) == (-12.0, -4.0, -4.0, 3.0)       # ints convert
    single = gc.compile([x, y, z], f)
    assert single(-2.0, 5.0, -4.0) == -12.0
    assert isinstance(gc.compile([x, y, z], [f])(1.0, 1.0, 1.0), tuple)
    compile(fn.source, "<generated>", "exec")                       # valid Python


def test_output_that_is_an_input_is_copied():
    v = gc.vector("v", 3)
    fn = gc.compile([v], [v, v * 2.0])
    a = np.arange(3.0)
    out, doubled = fn(a)
    out[0] = 99.0
    assert a[0] == 0.0 and doubled[1] == 2.0


@pytest.fixture(scope="module")
def checked():
    X = gc.tensor("X", (None, 3))
    w = gc.vector("w", 3)
    t = gc.vector("t", None)
    cost = gc.sum(gc.square(X @ w - t))
    return gc.compile([X, w, t], [cost, gc.grad(cost, w)])


BAD_CALLS = [
    ((np.ones((4, 3)), np.ones(3)), TypeError, "t"),                      # missing argument
    ((np.ones((4, 3)), np.ones(4), np.ones(4)), ValueError, "'w'"),       # fixed dim
    ((np.ones((4, 3)), np.ones(3), np.ones(5)), ValueError, "'t'"),       # dynamic dims disagree
    ((np.ones((4, 3, 1)), np.ones(3), np.ones(4)), ValueError, "'X'"),    # rank
    ((np.ones((4, 3)), np.ones(3, complex), np.ones(4)), TypeError, "'w'"),
    ((np.ones((4, 3)), np.array(["a", "b", "c"]), np.ones(4)), TypeError, "'w'"),
    ((np.ones((4, 3)), None, np.ones(4)), TypeError, "'w'"),
    ((np.ones((4, 3)), 1.0, np.ones(4)), ValueError, "'w'"),              # 0-d for 1-d
]


@pytest.mark.parametrize("args, error, name", BAD_CALLS)
def test_bad_calls_raise_documented_errors(checked, args, error, name):
    with pytest.raises(error, match=name):
        checked(*args)


def test_conversions_that_work(checked):
    X = np.arange(12.0).reshape(4, 3)
    want = checked(X, np.ones(3), np.ones(4))
    for args in [(X.astype(np.int32), [1, 1, 1], np.ones(4, bool)),       # int, list, bool
                 (np.asfortranarray(X), np.ones(6)[::2], np.ones(4)),    # non-contiguous
                 (X[::-1][::-1], np.ones(3), np.ones(4))]:
        got = checked(*args)
        np.testing.assert_allclose(got[0], want[0])
        np.testing.assert_allclose(got[1], want[1])


def test_bad_calls_do_not_crash_the_interpreter(tmp_path):
    script = textwrap.dedent("""
        import numpy as np, graphc as gc
        X = gc.tensor("X", (None, 3)); w = gc.vector("w", 3); t = gc.vector("t", None)
        cost = gc.sum(gc.square(X @ w - t))
        fn = gc.compile([X, w, t], [cost, gc.grad(cost, w)])
        bad = [(np.ones((4, 3)), np.ones(4), np.ones(4)), (np.ones((5, 3)), np.ones(3), np.ones(2)),
               (np.ones((0, 3)), np.ones(3), np.ones(1)), (np.ones((4, 2)), np.ones(3), np.ones(4)),
               (np.ones(3), np.ones(3), np.ones(3)), ([[1, 2], [3]], np.ones(3), np.ones(2))]
        errors = 0
        for args in bad:
            try:
                fn(*args)
            except (TypeError, ValueError):
                errors += 1
        print("errors", errors)
        cost0, g0 = fn(np.ones((0, 3)), np.ones(3), np.ones(0))   # zero-size batch works
        print("empty", cost0, g0.tolist())
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=300, env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    assert "errors 6" in out.stdout
    assert "empty 0.0 [0.0, 0.0, 0.0]" in out.stdout


def test_export_runs_without_graphc(tmp_path, mlp):
    dtype, inputs, outputs, fn = mlp
    assert gc.export(fn, tmp_path / "mlp_grad.py").exists()
    values = mlp_values(5, dtype)
    np.savez(tmp_path / "values.npz", *values)
    want = fn(*values)
    np.savez(tmp_path / "want.npz", *want)
    script = textwrap.dedent(f"""
        import sys
        sys.modules["graphc"] = None          # importing graphc would now fail
        sys.modules["sympy"] = None
        sys.path.insert(0, {str(tmp_path)!r})
        import numpy as np
        import mlp_grad
        v = np.load("values.npz"); w = np.load("want.npz")
        got = mlp_grad.fn(*[v[f"arr_{{i}}"] for i in range(6)])
        assert len(got) == 5
        for i, g in enumerate(got):
            assert np.array_equal(g, w[f"arr_{{i}}"]), i
        assert mlp_grad.INPUTS[0][0] == "X" and "Inputs:" in mlp_grad.__doc__
        try:
            mlp_grad.fn(*[v[f"arr_{{i}}"] for i in range(5)])
        except TypeError:
            print("checked")
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "checked\nok" in out.stdout


CACHE_SCRIPT = textwrap.dedent("""
    import time, numpy as np, graphc as gc
    a, b = gc.vector("a", None), gc.vector("b", None)
    cost = gc.sum(gc.tanh(a * b) + gc.exp(-a))
    t = time.perf_counter()
    fn = gc.compile([a, b], [cost, *gc.grad(cost, [a, b])])
    r = fn(np.linspace(0, 1, 5), np.linspace(1, 2, 5))
    print("value", repr(float(r[0])), "compiled_in", time.perf_counter() - t)
    print("file", fn.module.__file__)
""")


def _run_cache_script(cache_dir):
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(cache_dir))
    out = subprocess.run([sys.executable, "-c", CACHE_SCRIPT], capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    fields = out.stdout.split()
    return float(fields[1]), float(fields[3]), fields[5]


def test_cache_is_hit_by_a_second_process_and_survives_corruption(tmp_path):
    value, cold, path = _run_cache_script(tmp_path)
    a, b = np.linspace(0, 1, 5), np.linspace(1, 2, 5)
    assert value == pytest.approx(np.sum(np.tanh(a * b) + np.exp(-a)))
    value2, warm, path2 = _run_cache_script(tmp_path)
    assert path2 == path and value2 == value
    assert warm < cold        # no code generation, no LLVM: Numba loads its cache
    with open(path, "w") as f:
        f.write("this is not python (")
    value3, _, path3 = _run_cache_script(tmp_path)
    assert value3 == value and path3 == path
    compile(open(path).read(), path, "exec")           # rebuilt
    lines = open(path).read().splitlines(keepends=True)
    with open(path, "w") as f:                         # truncated at a line boundary:
        f.writelines(lines[: len(lines) // 2])         # still valid Python, but no `fn`
    value4, _, _ = _run_cache_script(tmp_path)
    assert value4 == value


def test_unwritable_cache_dir_falls_back_to_memory(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(blocker / "cache"))
    monkeypatch.setattr("graphc.codegen.cache._warned_unwritable", False)
    x = gc.scalar("x_unwritable")
    with pytest.warns(RuntimeWarning, match="cannot write the compile cache"):
        fn = gc.compile([x], [gc.sin(x) * 3.0])
    assert fn(0.5) == (pytest.approx(3 * np.sin(0.5)),)


def test_in_place_updates():
    w = gc.vector("w", 3, dtype="float32")
    loss = gc.sum(gc.square(w - 1.0))
    step = gc.compile([w], loss, updates={w: w - 0.25 * gc.grad(loss, w)})
    arr = np.array([0.0, 1.0, 3.0], np.float32)
    assert step(arr) == pytest.approx(5.0)          # computed from the old values
    np.testing.assert_allclose(arr, [0.5, 1.0, 2.0])
    with pytest.raises(TypeError, match="updated in place"):
        step(arr.astype(np.float64))


def test_parallel_and_fastmath_agree_with_the_default():
    x, t = gc.vector("px", None), gc.vector("pt", None)
    w = gc.scalar("pw")
    M = gc.matrix("pM", (None, 4))
    cost = gc.sum(gc.softplus(-t * (w * x))) + gc.sum(gc.max(M, axis=1)) + gc.sum(gc.sum(M, axis=0))
    outputs = [cost] + gc.grad(cost, [w, x, M])
    rng = np.random.default_rng(3)
    args = (rng.standard_normal(2000), np.sign(rng.standard_normal(2000)), 0.5,
            rng.standard_normal((2000, 4)))
    want = gc.evaluate(outputs, dict(zip([x, t, w, M], args)))
    for options in ({"parallel": True}, {"fastmath": True}):
        got = gc.compile([x, t, w, M], outputs, **options)(*args)
        for g, e in zip(got, want):
            np.testing.assert_allclose(g, e, rtol=1e-9, atol=1e-9)


@pytest.fixture(scope="module")
def deep_chain():
    """The one-neuron-per-layer chain, deep enough to run on the interpreter."""
    L = 400
    ws = [gc.scalar(f"cw{i}") for i in range(L)]
    bs = [gc.scalar(f"cb{i}") for i in range(L)]
    a0, y = gc.scalar("ca0"), gc.scalar("cy")
    a = a0
    for w, b in zip(ws, bs):
        a = gc.sigmoid(w * a + b)
    cost = gc.square(a - y)
    inputs = ws + bs + [a0, y]
    outputs = [cost] + gc.grad(cost, ws + bs)
    rng = np.random.default_rng(5)
    values = list(rng.uniform(0.5, 1.5, L)) + list(rng.uniform(-0.2, 0.2, L)) + [0.3, 0.9]
    return inputs, outputs, values, gc.compile(inputs, outputs)


def test_large_scalar_graphs_run_on_the_interpreter(deep_chain):
    inputs, outputs, values, fn = deep_chain
    assert "CODE = np.frombuffer" in fn.source
    got = fn(*values)
    want = gc.evaluate(outputs, dict(zip(inputs, values)))
    np.testing.assert_allclose(np.array(got), np.array(want), rtol=1e-12, atol=1e-300)
    # hand-written backprop of the same chain
    L = len(inputs) // 2 - 1
    w, b, a = np.array(values[:L]), np.array(values[L:2 * L]), [values[-2]]
    for i in range(L):
        a.append(1 / (1 + np.exp(-(w[i] * a[-1] + b[i]))))
    delta = 2 * (a[-1] - values[-1])
    gw, gb = np.zeros(L), np.zeros(L)
    for i in reversed(range(L)):
        delta = delta * a[i + 1] * (1 - a[i + 1])
        gw[i], gb[i] = delta * a[i], delta
        delta = delta * w[i]
    np.testing.assert_allclose(got[1:L + 1], gw, rtol=1e-9)
    np.testing.assert_allclose(got[L + 1:], gb, rtol=1e-9)


def test_interpreted_export_stands_alone(deep_chain, tmp_path):
    inputs, outputs, values, fn = deep_chain
    gc.export(fn, tmp_path / "chain.py")
    np.save(tmp_path / "values.npy", np.array(values))
    np.save(tmp_path / "want.npy", np.array(fn(*values)))
    script = textwrap.dedent("""
        import sys
        sys.modules["graphc"] = None
        sys.path.insert(0, ".")
        import numpy as np, chain
        got = chain.fn(*np.load("values.npy"))
        assert np.array_equal(np.array(got), np.load("want.npy"))
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "ok" in out.stdout


def test_check_finite_names_the_first_bad_node():
    x = gc.vector("fx", None)
    cost = gc.sum(gc.sqrt(x) * 3.0)
    outputs = [cost, gc.grad(cost, x)]
    checked = gc.compile([x], outputs, check_finite=True)
    value, slope = checked(np.array([1.0, 4.0]))
    assert value == 9.0 and slope.tolist() == [1.5, 0.75]
    with pytest.raises(FloatingPointError, match=r"sqrt\(fx: \(\?,\)\) in the forward pass"):
        checked(np.array([1.0, -4.0]))
    with pytest.raises(FloatingPointError, match="in the backward pass"):
        checked(np.array([1.0, 0.0]))                 # sqrt'(0) = inf
    assert "NONFINITE" not in gc.compile([x], outputs).source   # off: no cost at all
