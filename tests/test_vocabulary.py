"""The vocabulary of DESIGN.md part 2 beyond the op-table cases: integer inputs and
labels, runtime index checks (in a subprocess: a bad index must raise, never read out
of bounds), functional updates, constructors and the autodiff conveniences."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import graphc as gc
from graphc import tape

from checks import assert_close

rng = np.random.default_rng(13)


@pytest.fixture(scope="module")
def gather():
    """A gather by an int64 input, its adjoint (scatter-add) and an integer-label loss,
    compiled once."""
    x, idx = gc.tensor("x", (5, 3)), gc.tensor("idx", (None,), "int64")
    z, labels = gc.tensor("z", (None, 4)), gc.tensor("labels", (None,), "int64")
    rows = x[idx]
    cost = gc.sum(rows * rows) + gc.mean(gc.cross_entropy(z, labels))
    outputs = [rows, cost, *gc.grad(cost, [x, z])]
    return (x, idx, z, labels), outputs, gc.compile([x, idx, z, labels], outputs)


def test_gather_by_an_int_input_and_its_scatter_add(gather):
    (x, idx, z, labels), outputs, fn = gather
    X, I = rng.normal(size=(5, 3)), np.array([4, -1, 0, 4, 2])        # duplicates, negative
    Z, L = rng.normal(size=(6, 4)), np.array([0, 3, 1, 1, 2, 0])
    rows, cost, dx, dz = fn(X, I, Z, L)
    assert_close(rows, X[I], "x[idx]")
    expected_dx = np.zeros_like(X)
    np.add.at(expected_dx, I, 2 * X[I])                               # duplicates add
    assert_close(dx, expected_dx, "scatter-add adjoint")
    logp = Z - np.log(np.exp(Z).sum(1, keepdims=True))
    assert_close(cost, (X[I] ** 2).sum() - logp[np.arange(6), L].mean(), "cost")
    softmax = np.exp(logp)
    assert_close(dz, (softmax - np.eye(4)[L]) / 6, "integer-label cross-entropy gradient")
    for got, want in zip(fn(X, I, Z, L), gc.evaluate(outputs, {x: X, idx: I, z: Z, labels: L})):
        assert_close(got, want, "compiled vs evaluate", 1e-12, 1e-12)


def test_integer_labels_equal_one_hot_targets():
    z = gc.tensor("z", (None, 4))
    Z, L = rng.normal(size=(5, 4)), np.array([3, 0, 0, 2, 1])
    by_label = gc.evaluate(gc.cross_entropy(z, L), {z: Z})
    by_onehot = gc.evaluate(gc.cross_entropy(z, gc.one_hot(L, 4)), {z: Z})
    assert_close(by_label, by_onehot, "labels vs one-hot", 1e-14, 1e-14)


def test_integer_inputs_take_exact_values_only(gather):
    _, _, fn = gather
    X, Z = np.ones((5, 3)), np.ones((2, 4))
    with pytest.raises(TypeError, match="'idx'.*int64"):
        fn(X, np.array([0.5, 1.0]), Z, np.array([0, 1]))           # 0.5 is not an index
    with pytest.raises(TypeError, match="'labels'"):
        fn(X, np.array([0]), Z, np.array([0.0, 1.0]))
    assert fn(X, [1, 2], Z, np.array([0, 1], dtype=np.int32))[0].shape == (2, 3)


def test_grad_with_respect_to_an_integer_input_is_refused():
    idx = gc.tensor("idx", (3,), "int64")
    with pytest.raises(TypeError, match="'idx'"):
        gc.grad(gc.sum(idx * 2.0), idx)


def test_bad_indices_raise_and_never_read_out_of_bounds(tmp_path):
    """In a subprocess, as the hostile-call tests: a crash would not take pytest down."""
    script = textwrap.dedent("""
        import numpy as np, graphc as gc
        x, idx = gc.tensor("x", (5, 3)), gc.tensor("idx", (None,), "int64")
        z, labels = gc.tensor("z", (None, 4)), gc.tensor("labels", (None,), "int64")
        fn = gc.compile([x, idx, z, labels], [gc.sum(x[idx]), gc.sum(gc.cross_entropy(z, labels))])
        X, Z = np.ones((5, 3)), np.ones((2, 4))
        for bad_idx, bad_labels in (([5], [0, 1]), ([-6], [0, 1]), ([0], [4, 0]), ([0], [0, -1]),
                                    ([10 ** 9], [0, 0])):
            try:
                fn(X, np.array(bad_idx), Z, np.array(bad_labels))
            except IndexError:
                print("IndexError")
        print(fn(X, np.array([-5, 4]), Z, np.array([3, 0]))[0])
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=600, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["IndexError"] * 5 + ["6.0"]


def test_build_time_index_errors():
    x = gc.tensor("x", (4, 3))
    with pytest.raises(IndexError, match="out of range"):
        x[4]
    with pytest.raises(IndexError):
        gc.take(x, [0, 7], axis=0)
    with pytest.raises(TypeError, match="gc.where"):
        x[x > 0]
    with pytest.raises(IndexError, match="dynamic"):
        gc.tensor("b", (None, 3))[1:3]


def test_functional_updates_on_every_backend():
    x, v = gc.vector("x", 5), gc.vector("v", 3)
    X, V = np.arange(5.0), np.array([10.0, 20.0, 30.0])
    outs = [x.at[[1, 1, 3]].add(v), x.at[1:4].set(v), x.at[0].add(100.0)]
    added = X.copy()
    np.add.at(added, [1, 1, 3], V)
    want = [added, np.array([0.0, 10, 20, 30, 4]), X + np.eye(5)[0] * 100]
    got_eval = gc.evaluate(outs, {x: X, v: V})
    got_compiled = gc.compile([x, v], outs)(X, V)
    t = tape.Tensor(X, requires_grad=True)
    got_tape = [t.at[[1, 1, 3]].add(V).data, t.at[1:4].set(V).data, t.at[0].add(100.0).data]
    for backend, got in (("evaluate", got_eval), ("compiled", got_compiled), ("tape", got_tape)):
        for g, w in zip(got, want):
            assert_close(g, w, backend)
    dv = gc.evaluate(gc.grad(gc.sum(outs[0] * np.arange(5.0)), v), {x: X, v: V})
    assert_close(dv, [1.0, 1.0, 3.0], "d/dv of a scatter-add")


def test_constructors_follow_numpy():
    b = gc.tensor("b", (None, 3))
    B = np.ones((2, 3))
    got = gc.evaluate([gc.zeros((2, 3)), gc.ones(4, "int64"), gc.full((2,), 7.5), gc.eye(3, k=1),
                       gc.arange(2, 7, 2), gc.zeros_like(b) + b, gc.full_like(b, 2.0) * b,
                       gc.ones_like(b, "int64")], {b: B})
    want = [np.zeros((2, 3)), np.ones(4, np.int64), np.full(2, 7.5), np.eye(3, k=1),
            np.arange(2, 7, 2), B, 2 * B, np.ones((2, 3), np.int64)]
    for g, w in zip(got, want):
        assert_close(g, w, "constructor")
        assert np.asarray(g).dtype == w.dtype


def test_autodiff_conveniences():
    x = gc.vector("x", 3)
    X = np.array([0.5, -1.0, 2.0])
    f = gc.sum(x ** 3) * x[1]
    value, g = gc.value_and_grad(f, x)
    hess = gc.hessian(f, x)
    jac = gc.jacobian(gc.sin(x) * x[0], x)
    (v,) = [gc.vjp([gc.sin(x)], x, [np.array([1.0, 2.0, 3.0])])]
    got = gc.evaluate([value, g, hess, jac, v], {x: X})
    s = (X ** 3).sum()
    assert_close(got[0], s * X[1], "value")
    assert_close(got[1], 3 * X ** 2 * X[1] + np.eye(3)[1] * s, "grad")
    assert_close(got[2], np.array([[6 * X[0] * X[1], 3 * X[0] ** 2, 0],
                                   [3 * X[0] ** 2, 12 * X[1] ** 2, 3 * X[2] ** 2],
                                   [0, 3 * X[2] ** 2, 6 * X[2] * X[1]]]), "hessian")
    assert_close(got[3], np.diag(np.cos(X)) * X[0] + np.outer(np.sin(X), np.eye(3)[0]), "jacobian")
    assert_close(got[4], np.cos(X) * [1, 2, 3], "vjp")
    stopped = gc.grad(gc.sum(gc.stop_gradient(x * x) * x), x)     # x*x is a constant here
    assert_close(gc.evaluate(stopped, {x: X}), X * X, "stop_gradient")


def test_array_methods_on_graphs_and_tape():
    x = gc.tensor("x", (2, 3))
    X = rng.normal(size=(2, 3))
    got = gc.evaluate([x.sum(axis=0), x.mean(), x.max(1), x.min(), x.reshape(3, 2), x.T,
                       x.transpose(1, 0), x.astype("float32"), abs(x),
                       gc.expand_dims(x, 0).squeeze()], {x: X})
    want = [X.sum(0), X.mean(), X.max(1), X.min(), X.reshape(3, 2), X.T, X.T,
            X.astype(np.float32), np.abs(X), X]
    assert x.ndim == 2
    for g, w in zip(got, want):
        assert_close(g, w, "method")
    t = tape.Tensor(X)
    assert_close(t.sum(axis=1).data, X.sum(1), "tape method")


def test_tensordot_axes_forms_value_and_gradient_compiled():
    """gc.tensordot (a composite over transpose/reshape/matmul) for the int and pair forms,
    against np.tensordot; the gradient against the analytic one; one compiled Function."""
    cases = [((3, 4, 5), (4, 5, 2), 2), ((3, 4, 5), (5, 2), 1), ((2, 3), (4,), 0),
             ((3, 4, 5), (5, 4, 2), ([1, 2], [1, 0])), ((4, 3), (4, 2), (0, 0))]
    inputs, outputs, values, expected = [], [], [], []
    for n, (sa, sb, axes) in enumerate(cases):
        a, b = gc.tensor(f"a{n}", sa), gc.tensor(f"b{n}", sb)
        A, B = rng.normal(size=sa), rng.normal(size=sb)
        y = gc.tensordot(a, b, axes)
        inputs += [a, b]
        values += [A, B]
        outputs += [y, *gc.grad(gc.sum(y * y), [a])]
        Y = np.tensordot(A, B, axes)
        # d/dA sum(Y^2) = tensordot-adjoint: finite differences along one random direction
        V, eps = rng.normal(size=sa), 1e-6
        fd = (np.sum(np.tensordot(A + eps * V, B, axes) ** 2)
              - np.sum(np.tensordot(A - eps * V, B, axes) ** 2)) / (2 * eps)
        expected.append((Y, V, fd))
    results = gc.compile(inputs, outputs)(*values)
    for n, (Y, V, fd) in enumerate(expected):
        assert_close(results[2 * n], Y, f"tensordot {cases[n]}")
        assert abs(np.sum(results[2 * n + 1] * V) - fd) < 1e-5 * max(1, abs(fd))
    with pytest.raises(gc.ShapeError, match="tensordot"):
        gc.tensordot(gc.tensor("p", (3, 4)), gc.tensor("q", (5, 2)), 1)


def test_cumsum_axes_value_and_gradient_compiled():
    """gc.cumsum against np.cumsum (axis None, 0, -1, a dynamic leading axis); the gradient
    is the reverse cumsum; one compiled Function."""
    x, d = gc.tensor("x", (3, 4)), gc.tensor("d", (None, 5))
    X, D = rng.normal(size=(3, 4)), rng.normal(size=(2, 5))
    W = rng.normal(size=(3, 4))
    ys = [gc.cumsum(x), gc.cumsum(x, 0), gc.cumsum(x, -1), gc.cumsum(d, 1)]
    outputs = [*ys, *gc.grad(gc.sum(gc.cumsum(x, 1) * gc.const(W)), [x])]
    for fn in (lambda *v: gc.evaluate(outputs, dict(zip([x, d], v))), gc.compile([x, d], outputs)):
        c0, c1, c2, c3, g = fn(X, D)
        assert_close(c0, np.cumsum(X), "cumsum None")
        assert_close(c1, np.cumsum(X, 0), "cumsum 0")
        assert_close(c2, np.cumsum(X, -1), "cumsum -1")
        assert_close(c3, np.cumsum(D, 1), "cumsum dynamic rows")
        assert_close(g, np.cumsum(W[:, ::-1], 1)[:, ::-1], "reverse cumsum")


def test_take_along_axis_values_scatter_add_and_bad_indices(tmp_path):
    """gc.take_along_axis against np.take_along_axis on both axes (negative indices,
    duplicates whose gradients add) compiled; out-of-range indices an IndexError at call
    time from compiled code, in a subprocess (never a read out of bounds)."""
    x = gc.tensor("x", (3, 4))
    i1, i0 = gc.tensor("i1", (3, 2), "int64"), gc.tensor("i0", (2, 4), "int64")
    X, I1 = rng.normal(size=(3, 4)), np.array([[0, -1], [3, 3], [1, 2]])
    I0 = np.array([[0, 2, -1, 1], [2, 2, 0, 0]])
    y1, y0 = gc.take_along_axis(x, i1, 1), gc.take_along_axis(x, i0, 0)
    fn = gc.compile([x, i1, i0], [y1, y0, *gc.grad(gc.sum(y1) + gc.sum(y0 * y0), [x])])
    v1, v0, g = fn(X, I1, I0)
    assert_close(v1, np.take_along_axis(X, I1, 1), "axis 1")
    assert_close(v0, np.take_along_axis(X, I0, 0), "axis 0")
    expected = np.zeros_like(X)
    np.add.at(expected, (np.arange(3)[:, None], I1), 1.0)
    np.add.at(expected, (I0, np.arange(4)[None, :]), 2 * np.take_along_axis(X, I0, 0))
    assert_close(g, expected, "scatter-add, duplicates summing")
    script = textwrap.dedent("""
        import numpy as np, graphc as gc
        x, i = gc.tensor("x", (3, 4)), gc.tensor("i", (3, 2), "int64")
        fn = gc.compile([x, i], [gc.take_along_axis(x, i, 1)])
        for bad in (4, -5, 10 ** 9):
            try:
                fn(np.ones((3, 4)), np.full((3, 2), bad))
            except IndexError:
                print("IndexError")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=600, check=False)
    assert out.stdout.split() == ["IndexError"] * 3, out.stderr[-2000:]


def test_prod_with_zeros_value_and_gradient_compiled():
    """gc.prod / x.prod() against np.prod on every axis form; its gradient is the product
    of the others, exact with no, one and two zeros in a row; evaluate and compiled."""
    x = gc.tensor("x", (3, 5))
    X = rng.normal(size=(3, 5))
    X[1, 2] = 0.0                                    # row 1: one zero
    X[2, 0] = X[2, 3] = 0.0                          # row 2: two zeros
    forms = [(None, False), (0, False), (1, True), ((0, 1), True), (-1, False)]
    outputs = [gc.prod(x, a, k) for a, k in forms] + [x.prod()]
    outputs += gc.grad(gc.sum(x.prod(axis=1)), [x])
    others = np.array([[np.prod(np.delete(X[r], c)) for c in range(5)] for r in range(3)])
    for fn in (lambda v: gc.evaluate(outputs, {x: v}), gc.compile([x], outputs)):
        results = fn(X)
        for (a, k), r in zip(forms, results):
            assert_close(r, np.prod(X, a, keepdims=k), f"prod {a} {k}")
        assert_close(results[-2], np.prod(X), "x.prod()")
        assert_close(results[-1], others, "product of the others")


def test_einsum_against_numpy_in_one_compile():
    """gc.einsum for explicit and implicit outputs (matmul, batched, transposes, sums,
    inner/outer products, elementwise) against np.einsum, with the gradient of the first
    operand along a random direction against finite differences; one compiled Function;
    unsupported subscripts a clear error."""
    size = {"i": 2, "j": 3, "k": 4, "l": 5, "b": 3}
    cases = ["ij,jk->ik", "ij,jk", "bij,bjk->bik", "ij->ji", "ij->", "ij->j", "i,i->",
             "i,j->ij", "bij,bkj->bki", "ijk,jl->li", "ij,ij->ij", "ij"]
    inputs, values, outputs, checks = [], [], [], []
    for n, c in enumerate(cases):
        arrs = [rng.normal(size=[size[ch] for ch in t]) for t in c.split("->")[0].split(",")]
        xs = [gc.tensor(f"e{n}_{m}", a.shape) for m, a in enumerate(arrs)]
        y = gc.einsum(c, *xs)
        inputs += xs
        values += arrs
        outputs += [y, gc.grad(gc.sum(y * y), xs[0])]
        V, eps = rng.normal(size=arrs[0].shape), 1e-6
        f = lambda a0: np.sum(np.einsum(c, a0, *arrs[1:]) ** 2)  # noqa: E731
        checks.append((c, np.einsum(c, *arrs), V, (f(arrs[0] + eps * V) - f(arrs[0] - eps * V)) / (2 * eps)))
    results = gc.compile(inputs, outputs)(*values)
    for n, (c, want, V, fd) in enumerate(checks):
        assert_close(results[2 * n], want, f"einsum {c}")
        assert abs(np.sum(results[2 * n + 1] * V) - fd) < 1e-5 * max(1, abs(fd)), c
    a = gc.tensor("a", (3, 3))
    for bad in ("ii->", "...ij->ij"):
        with pytest.raises(NotImplementedError, match="einsum"):
            gc.einsum(bad, a)
