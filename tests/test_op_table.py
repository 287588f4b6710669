"""Every op in the op table, checked the same way: values against NumPy, gradients
against central differences, the tape and forward mode against the reference
interpreter, and one compiled Function against all of them.  An op without a case
here fails `test_every_op_has_a_case`."""

import numpy as np
import pytest

import graphc as gc
from graphc.graph import toposort
from graphc.ops import OPS

from checks import assert_close, check_against_finite_differences, graph_case

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
}


def test_every_op_has_a_case():
    covered = set()
    for build, values, _ in CASES.values():
        _, cost, _, _ = graph_case(build, values)
        covered |= {n.op for n in toposort([cost])}
    missing = {name for name in OPS if "__d" not in name} - covered - {"input", "const"}
    assert not missing, f"ops without a test case: {sorted(missing)}"


@pytest.mark.parametrize("name", list(CASES))
def test_op_value_and_gradients(name):
    build, values, reference = CASES[name]
    inputs, _, _, _, _ = check_against_finite_differences(build, values, name)
    out = build(*inputs)
    assert_close(gc.evaluate(out, dict(zip(inputs, values))), reference(*values),
                 f"{name}: value vs NumPy", 1e-12, 1e-12)


@pytest.fixture(scope="module")
def compiled_cases():
    """All cases in one compiled Function (one Numba compilation for the whole table)."""
    all_inputs, outputs, spans, feeds = [], [], {}, []
    for k, (name, (build, values, _)) in enumerate(CASES.items()):
        inputs, cost, grads, _ = graph_case(build, values, prefix=f"c{k}_")
        spans[name] = (len(outputs), len(outputs) + 1 + len(grads))
        outputs += [cost] + grads
        all_inputs += inputs
        feeds += values
    fn = gc.compile(all_inputs, outputs)
    got = fn(*feeds)
    want = gc.evaluate(outputs, dict(zip(all_inputs, feeds)))
    return spans, got, want


@pytest.mark.parametrize("name", list(CASES))
def test_compiled_agrees_with_the_interpreter(compiled_cases, name):
    spans, got, want = compiled_cases
    lo, hi = spans[name]
    for i in range(lo, hi):
        assert_close(got[i], want[i], f"{name}: compiled output {i - lo}", 1e-11, 1e-12)
