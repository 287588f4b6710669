"""Every op in the op table, checked the same way: values against NumPy, gradients
against central differences, the tape and forward mode against the reference
interpreter, and one compiled Function against all of them.  An op without a case
here fails `test_every_op_has_a_case`."""

import numpy as np
import pytest

import graphc as gc
from graphc.graph import toposort

from checks import (Directional, assert_close, assert_same, builtin_ops,
                    check_against_finite_differences, graph_case, ops_in, shared_bundle)

rng = np.random.default_rng(42)


def U(lo, hi, *shape):
    return rng.uniform(lo, hi, size=shape)


def away_from_zero(*shape):
    return rng.uniform(0.3, 1.5, size=shape) * rng.choice([-1.0, 1.0], size=shape)


# name -> (build, input values, NumPy reference)
CASES = {
    "neg": (lambda a: -a, [U(-2, 2, 2, 3)], lambda a: -a),
    "add": (lambda a, b: a + b, [U(-2, 2, 2, 3), U(-2, 2, 3)], np.add),
    "add (3,1)+(4,)": (lambda a, b: a + b, [U(-2, 2, 3, 1), U(-2, 2, 4)], np.add),
    "sub": (lambda a, b: a - b, [U(-2, 2, 3, 1), U(-2, 2, 1, 4)], np.subtract),
    "mul scalar*matrix": (lambda a, b: a * b, [U(-2, 2), U(-2, 2, 2, 3)], np.multiply),
    "div": (lambda a, b: a / b, [U(-2, 2, 2, 3), U(0.5, 2, 3)], np.divide),
    "pow": (lambda a, b: a ** b, [U(0.5, 2, 2, 3), U(0.5, 2.5, 3)], np.power),
    "exp": (gc.exp, [U(-2, 2, 4)], np.exp),
    "log": (gc.log, [U(0.2, 3, 4)], np.log),
    "log1p": (gc.log1p, [U(-0.5, 3, 4)], np.log1p),
    "sqrt": (gc.sqrt, [U(0.2, 3, 4)], np.sqrt),
    "square": (gc.square, [U(-2, 2, 4)], np.square),
    "abs": (gc.abs, [away_from_zero(4)], np.abs),
    "sign": (lambda a: gc.sign(a) * a, [away_from_zero(4)], lambda a: np.sign(a) * a),
    "sin": (gc.sin, [U(-3, 3, 4)], np.sin),
    "cos": (gc.cos, [U(-3, 3, 4)], np.cos),
    "tanh": (gc.tanh, [U(-3, 3, 4)], np.tanh),
    "sigmoid": (gc.sigmoid, [U(-4, 4, 4)], lambda a: 1 / (1 + np.exp(-a))),
    "relu": (gc.relu, [away_from_zero(2, 3)], lambda a: np.maximum(a, 0)),
    "softplus": (gc.softplus, [U(-4, 4, 4)], lambda a: np.log1p(np.exp(a))),
    "maximum": (gc.maximum, [U(-2, 2, 2, 3), U(-2, 2, 3)], np.maximum),
    "minimum": (gc.minimum, [U(-2, 2, 2, 3), U(-2, 2, 3)], np.minimum),
    "where, greater": (lambda a, b: gc.where(a > b, a * 2.0, b), [U(-2, 2, 5), U(-2, 2, 5)],
                       lambda a, b: np.where(a > b, 2 * a, b)),
    "less": (lambda a, b: gc.where(gc.less(a, b), a, b * 3.0), [U(-2, 2, 5), U(-2, 2, 5)],
             lambda a, b: np.where(a < b, a, 3 * b)),
    "less_equal": (lambda a, b: gc.where(a <= b, a, -b), [U(-2, 2, 5), U(-2, 2, 5)],
                   lambda a, b: np.where(a <= b, a, -b)),
    "greater_equal": (lambda a, b: gc.where(a >= b, a, -b), [U(-2, 2, 5), U(-2, 2, 5)],
                      lambda a, b: np.where(a >= b, a, -b)),
    "equal": (lambda a: gc.where(gc.equal(gc.sign(a), 1.0), a, a * 3.0), [away_from_zero(5)],
              lambda a: np.where(a > 0, a, 3 * a)),
    "astype": (lambda a: gc.astype(a, "float64") * 2.0, [U(-2, 2, 3)], lambda a: 2 * a),
    "sum axis=1": (lambda a: gc.sum(a, axis=1), [U(-2, 2, 2, 3, 4)], lambda a: a.sum(1)),
    "sum (0,2) keepdims": (lambda a: gc.sum(a, axis=(0, 2), keepdims=True),
                           [U(-2, 2, 2, 3, 4)], lambda a: a.sum((0, 2), keepdims=True)),
    "max axis=-1": (lambda a: gc.max(a, axis=-1), [U(-2, 2, 3, 4)], lambda a: a.max(-1)),
    "min all": (gc.min, [U(-2, 2, 3, 4)], np.min),
    "logsumexp axis=0": (lambda a: gc.logsumexp(a, axis=0), [U(-2, 2, 3, 4)],
                         lambda a: np.log(np.exp(a).sum(0))),
    "logsumexp keepdims": (lambda a: gc.logsumexp(a, axis=1, keepdims=True), [U(-2, 2, 3, 4)],
                           lambda a: np.log(np.exp(a).sum(1, keepdims=True))),
    "mean (numel)": (lambda a: gc.mean(a, axis=0), [U(-2, 2, 3, 4)], lambda a: a.mean(0)),
    "transpose": (lambda a: gc.transpose(a, (2, 0, 1)), [U(-2, 2, 2, 3, 4)],
                  lambda a: a.transpose(2, 0, 1)),
    ".T": (lambda a: a.T, [U(-2, 2, 2, 3)], lambda a: a.T),
    "reshape": (lambda a: gc.reshape(a, (3, 8)), [U(-2, 2, 6, 4)], lambda a: a.reshape(3, 8)),
    "expand_dims": (lambda a: gc.expand_dims(a, 1) * np.ones((2, 3, 3)), [U(-2, 2, 2, 3)],
                    lambda a: a[:, None, :] * np.ones((2, 3, 3))),
    "broadcast_to": (lambda a: gc.broadcast_to(a, (4, 2, 3)), [U(-2, 2, 2, 3)],
                     lambda a: np.broadcast_to(a, (4, 2, 3))),
    "broadcast_like": (lambda a, b: gc.broadcast_like(a, b) * b, [U(-2, 2, 1, 3), U(-2, 2, 2, 3)],
                       lambda a, b: a * b),
    "matmul 2x2": (lambda a, b: a @ b, [U(-2, 2, 2, 3), U(-2, 2, 3, 4)], np.matmul),
    "matmul 1x2": (lambda a, b: a @ b, [U(-2, 2, 3), U(-2, 2, 3, 4)], np.matmul),
    "matmul 2x1": (lambda a, b: a @ b, [U(-2, 2, 2, 3), U(-2, 2, 3)], np.matmul),
    "matmul 1x1": (lambda a, b: a @ b, [U(-2, 2, 3), U(-2, 2, 3)], np.matmul),
    "softmax": (gc.softmax, [U(-2, 2, 2, 4)],
                lambda a: np.exp(a) / np.exp(a).sum(-1, keepdims=True)),
    "log_softmax axis=0": (lambda a: gc.log_softmax(a, axis=0), [U(-2, 2, 3, 4)],
                           lambda a: a - np.log(np.exp(a).sum(0, keepdims=True))),
    "cross_entropy": (lambda z, y: gc.cross_entropy(z, y), [U(-2, 2, 3, 4), U(0, 1, 3, 4)],
                      lambda z, y: -(y * (z - np.log(np.exp(z).sum(-1, keepdims=True)))).sum(-1)),
    "cross_entropy (K,)": (gc.cross_entropy, [U(-2, 2, 4), U(0, 1, 4)],
                           lambda z, y: -(y * (z - np.log(np.exp(z).sum()))).sum()),
    "mse": (gc.mse, [U(-2, 2, 3, 2), U(-2, 2, 3, 2)], lambda p, t: np.mean((p - t) ** 2)),
    # structure ops with every kind of permutation: the identity is not a .T
    "transpose identity (0, 1)": (lambda a: gc.transpose(a, (0, 1)), [U(-2, 2, 2, 3)],
                                  lambda a: a),
    "transpose (0, 2, 1)": (lambda a: gc.transpose(a, (0, 2, 1)), [U(-2, 2, 2, 3, 4)],
                            lambda a: a.transpose(0, 2, 1)),
    "transpose identity, tensordot-like": (
        lambda a, w: gc.sum(gc.transpose(a, (0, 1)) * w, axis=1), [U(-2, 2, 2, 3), U(-2, 2, 2, 3)],
        lambda a, w: (a * w).sum(1)),
    "transpose of a scalar, reshape": (lambda a: gc.reshape(gc.transpose(a, ()), (1, 1)),
                                       [U(-2, 2)], lambda a: np.reshape(a, (1, 1))),
    "reshape of a scalar": (lambda a: gc.reshape(a, (1,)) * np.ones(3), [U(-2, 2)],
                            lambda a: np.reshape(a, (1,)) * np.ones(3)),
    # pow where its partials meet 0 * inf or 0 * log(0): the true derivatives are finite
    # (d/db (a^2)^b = 0 at a = 0 for b > 0; d/da a^0 = 0 everywhere)
    "pow, base 0": (lambda a, b: gc.square(a) ** b, [np.array([0.0, 0.7, -1.3, 0.0]),
                                                     U(2.2, 3.0, 4)],
                    lambda a, b: np.square(a) ** b),
    "pow, exponent 0": (lambda a: a ** 0.0 * a, [np.array([0.0, 1.5, -0.5])],
                        lambda a: a ** 0.0 * a),
    "pow, negative base, integer exponent": (lambda a: a ** 3.0, [U(-2, 2, 5)],
                                             lambda a: a ** 3.0),
    "sign alone (no gradient path)": (lambda a: gc.sign(a) * 2.0, [away_from_zero(3, 4)],
                                      lambda a: np.sign(a) * 2.0),
    # -- the vocabulary: integer and bool operations, more elementwise functions ------
    "bitwise & | ^ ~ (bool masks)": (
        lambda a, b: gc.where(((a > 0) & (b < 0)) | (~(a > b) ^ (b > 0.5)), a, b * 2.0),
        [U(-2, 2, 6), U(-2, 2, 6)],
        lambda a, b: np.where(((a > 0) & (b < 0)) | (~(a > b) ^ (b > 0.5)), a, b * 2.0)),
    "mod": (lambda a, b: a % b, [U(2.3, 2.7, 4), U(1.0, 1.1, 4)], np.mod),   # a/b in (2, 3)
    "floor_divide": (lambda a, b: (a // b) * a, [U(2.3, 2.7, 4), U(1.0, 1.1, 4)],
                     lambda a, b: (a // b) * a),
    "floor, ceil, round": (lambda a: gc.floor(a) * a + gc.ceil(a) + gc.round(a) * 2.0,
                           [np.array([0.2, 1.3, -0.7, 2.6, -2.2])],
                           lambda a: np.floor(a) * a + np.ceil(a) + np.rint(a) * 2.0),
    "expm1": (gc.expm1, [U(-2, 2, 4)], np.expm1),
    "erf": (gc.erf, [U(-2, 2, 4)], lambda a: np.vectorize(__import__("math").erf)(a)),
    "tan": (gc.tan, [U(-1, 1, 4)], np.tan),
    "arctan": (gc.arctan, [U(-3, 3, 4)], np.arctan),
    "arctan2": (gc.arctan2, [U(-2, 2, 4), away_from_zero(4)], np.arctan2),
    "log2, log10": (lambda a: gc.log2(a) + gc.log10(a) * 3.0, [U(0.2, 3, 4)],
                    lambda a: np.log2(a) + np.log10(a) * 3.0),
    "stop_gradient (of a step function)": (lambda a: gc.stop_gradient(gc.floor(a)) * a,
                                           [np.array([0.2, 1.3, -0.7])],
                                           lambda a: np.floor(a) * a),
    "leaky_relu, elu, gelu, silu": (
        lambda a: gc.leaky_relu(a, 0.1) + gc.elu(a) * 2.0 + gc.gelu(a) * 3.0 + gc.silu(a),
        [away_from_zero(2, 3)],
        lambda a: (np.where(a > 0, a, 0.1 * a) + 2 * np.where(a > 0, a, np.expm1(a))
                   + 3 * 0.5 * a * (1 + np.vectorize(__import__("math").erf)(a / np.sqrt(2)))
                   + a / (1 + np.exp(-a)))),
    "clip": (lambda a: gc.clip(a, -0.5, 0.7), [np.array([-1.0, -0.2, 0.3, 0.9, 2.0])],
             lambda a: np.clip(a, -0.5, 0.7)),
    "argmax, argmin (no gradient)": (
        lambda a: a * gc.expand_dims(gc.argmax(a, axis=1) - gc.argmin(a, axis=1), 1),
        [U(-2, 2, 3, 4)],
        lambda a: a * (a.argmax(1) - a.argmin(1))[:, None]),
    "matmul with batch dimensions": (lambda a, b: a @ b, [U(-2, 2, 2, 3, 4), U(-2, 2, 4, 2)],
                                     np.matmul),
    "matmul, broadcast batches, 1-D": (lambda a, b, v: (a @ b) @ v,
                                       [U(-2, 2, 1, 3, 4), U(-2, 2, 2, 4, 3), U(-2, 2, 3)],
                                       lambda a, b, v: (a @ b) @ v),
    "batched_matmul (what batch matmuls lower to)": (
        lambda a, b: gc.api.apply("batched_matmul", a, b), [U(-2, 2, 2, 3, 4), U(-2, 2, 1, 4, 2)],
        np.matmul),
    # -- indexing and structure ---------------------------------------------------
    "getitem: ints, slices, None, ...": (lambda a: a[1:, ::-1][..., None][0] * a[-1, 2],
                                         [U(-2, 2, 3, 4)],
                                         lambda a: a[1:, ::-1][..., None][0] * a[-1, 2]),
    "getitem: a strided slice": (lambda a: a[::2, 3:0:-2], [U(-2, 2, 5, 4)],
                                 lambda a: a[::2, 3:0:-2]),
    "take (integer arrays, duplicates)": (
        lambda a: a[[2, 0, 2]] + gc.take(a, [[0, 1], [1, -1]], axis=1)[:, 0],
        [U(-2, 2, 3, 2)],
        lambda a: a[[2, 0, 2]] + np.take(a, [[0, 1], [1, -1]], axis=1)[:, 0]),
    "x[rows, cols]": (lambda a: a[[0, 2, 2], [1, 0, 1]], [U(-2, 2, 3, 2)],
                      lambda a: a[[0, 2, 2], [1, 0, 1]]),
    "at[].add, at[].set": (lambda a, v: a.at[[1, 1, 3]].add(v) + a.at[1:3].set(v[0]),
                           [U(-2, 2, 5), U(-2, 2, 3)],
                           lambda a, v: _at_reference(a, v)),
    "concatenate, stack, split": (
        lambda a, b: gc.concatenate([a, b * 2.0], axis=1) + gc.stack(gc.split(b, 2, axis=1) * 2, 1)
        .reshape((3, 4)) * 0.5,
        [U(-2, 2, 3, 2), U(-2, 2, 3, 2)],
        lambda a, b: np.concatenate([a, 2 * b], 1) + np.stack(np.split(b, 2, 1) * 2, 1)
        .reshape(3, 4) * 0.5),
    "flip, squeeze, swapaxes, moveaxis": (
        lambda a: gc.flip(a, 0) + gc.squeeze(gc.expand_dims(a, 0))
        + gc.moveaxis(gc.expand_dims(a, 2), 2, 0)[0] + gc.swapaxes(gc.swapaxes(a, 0, 1) * 2.0, 0, 1),
        [U(-2, 2, 2, 3)],
        lambda a: np.flip(a, 0) + a + a + 2 * a),
    "pad, tril, triu": (lambda a: gc.pad(gc.tril(a) - gc.triu(a, 1), ((1, 0), (0, 2)), 0.5),
                        [U(-2, 2, 3, 3)],
                        lambda a: np.pad(np.tril(a) - np.triu(a, 1), ((1, 0), (0, 2)),
                                         constant_values=0.5)),
    "var, std, norm": (lambda a: gc.var(a, axis=0, ddof=1) + gc.std(a) + gc.norm(a)
                       + gc.norm(a, 1) + gc.norm(a, np.inf, axis=1)[0],
                       [U(-2, 2, 3, 4)],
                       lambda a: (a.var(0, ddof=1) + a.std() + np.linalg.norm(a)
                                  + np.linalg.norm(a, 1) + np.abs(a).max(1)[0])),
    "cross_entropy with integer labels": (
        lambda z: gc.cross_entropy(z, np.array([1, 0, 3])), [U(-2, 2, 3, 4)],
        lambda z: -(z - np.log(np.exp(z).sum(1, keepdims=True)))[np.arange(3), [1, 0, 3]]),
    # a fused elementwise chain that the SymPy loop-body pass rewrites at optimize="full"
    "elementwise chain (SymPy loop body)": (
        lambda A, R: gc.softplus(gc.tanh(A) * 3.0 - gc.sigmoid(A)) * gc.exp(-gc.square(A)) * R,
        [U(-2, 2, 3, 4), U(-2, 2, 3, 4)],
        lambda A, R: (np.logaddexp(0, np.tanh(A) * 3 - 1 / (1 + np.exp(-A)))
                      * np.exp(-A ** 2) * R)),
}


def _extra_cases():
    """Cases of op families that live in their own modules (linear algebra,
    convolution, random numbers, ...): each tests/op_cases_<family>.py defines a CASES
    dict of the same form, merged here so one checker and one compiled bundle cover
    every op."""
    import importlib
    import pathlib
    merged = {}
    for path in sorted(pathlib.Path(__file__).parent.glob("op_cases_*.py")):
        family = importlib.import_module(path.stem).CASES
        clash = set(family) & (set(CASES) | set(merged))
        assert not clash, f"{path.name}: case names already used: {sorted(clash)}"
        merged.update(family)
    return merged


def _at_reference(a, v):
    added = a.copy()
    np.add.at(added, [1, 1, 3], v)
    written = a.copy()
    written[1:3] = v[0]
    return added + written


CASES.update(_extra_cases())


def test_every_op_has_a_case():
    covered = set()
    for build, values, _ in CASES.values():
        _, cost, _, _ = graph_case(build, values)
        covered |= {n.op for n in toposort([cost])}
    missing = builtin_ops() - covered
    assert not missing, f"ops without a test case: {sorted(missing)}"


@pytest.mark.parametrize("name", list(CASES))
def test_op_value_and_gradients(name):
    build, values, reference = CASES[name]
    inputs, _, _, _, _ = check_against_finite_differences(build, values, name)
    out = build(*inputs)
    assert_close(gc.evaluate(out, dict(zip(inputs, values))), reference(*values),
                 f"{name}: value vs NumPy", 1e-12, 1e-12)


LEVELS = ("full", "none")


def _fill(bundle):
    """Per case, on shared inputs x, u, v (so the bundle computes each forward and
    backward graph once): the output, the cost sum(out * u) and its gradients (key
    (name, "value")); <u, J v> by jvp and by vjp (key (name, 1)); and the Hessian-vector
    products by reverse over reverse and forward over reverse (key (name, 2)); the last
    two are checked by tests/test_op_orders.py.  A few compilations per level (chunks of
    checks.Bundle), instead of one per case."""
    for k, (name, (build, values, _)) in enumerate(CASES.items()):
        try:
            d = Directional(build, values, prefix=f"c{k}_", seed=k)
        except Exception as exc:
            for key in ("value", 1, 2):
                bundle.build_errors[(name, key)] = exc
            continue
        DIRECTIONAL[name] = d
        bundle.add((name, "value"), lambda d=d: (d.inputs, d.feeds, [d.out, d.cost] + d.grads),
                   group=name)
        bundle.add((name, 1), lambda d=d: (d.inputs, d.feeds, d.order1()), group=name)
        bundle.add((name, 2), lambda d=d: (d.inputs, d.feeds, d.hvp_rr() + d.hvp_fr()),
                   group=name)


DIRECTIONAL = {}


def op_bundle():
    return shared_bundle("op table", _fill)


def test_bundle_covers_every_op():
    """A new op must get a case: the compiled bundle holds every op of the table, in
    its forward graphs (so values, gradients and second derivatives are compiled)."""
    bundle = op_bundle()
    forward = set()
    for name, (build, values, _) in CASES.items():
        if (name, "value") in bundle.entries:
            forward |= ops_in(bundle.entries[(name, "value")][2][:1])
    missing = builtin_ops() - forward
    assert not missing, f"ops missing from the compiled op bundle: {sorted(missing)}"
    # three keys per case, built or failed (a build failure is its own test's failure)
    assert len(bundle) + len(bundle.build_errors) == 3 * len(CASES)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("name", list(CASES))
def test_compiled_agrees_with_the_interpreter(name, level):
    """Output, cost sum(out * u) and its gradients compiled at optimize=level against
    the interpreter (1e-11: the same float64 operations, reordered at most by the
    passes), and the output against NumPy."""
    got, want = op_bundle().result((name, "value"), level)
    assert_same(got[0], CASES[name][2](*CASES[name][1]), f"{name}: compiled value vs NumPy",
                1e-11, 1e-12)
    for i, (g, w) in enumerate(zip(got, want)):
        assert_same(g, w, f"{name} ({level}): compiled output {i} vs evaluate")
