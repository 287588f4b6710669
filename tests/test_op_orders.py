"""Autograd-style checks over every op of the op table (the cases of
tests/test_op_table.py), as HIPS autograd's check_vjp/check_jvp and JAX's check_grads:

* order 1: <u, J v> for a random output weight u and input direction v, three ways:
  forward mode (jvp, dotted with u), reverse mode (grad of sum(out * u), dotted with v)
  and central differences of sum(u * f(x + h v));
* order 2: the Hessian-vector product of c = sum(out * u) three ways: grad of
  <grad c, v> (reverse over reverse), jvp of grad c (forward over reverse) and grad of
  <u, J v> (reverse over forward), against central differences of grad c along v.

On the interpreter, on the tape (reverse mode, order 1: the tape has no higher
orders), and compiled at optimize="full" and "none" in the op table's bundle (one
Function per level, shared with tests/test_op_table.py).  The test points of the cases
are away from kinks, so every case is twice differentiable there."""

import numpy as np
import pytest

import graphc as gc

from checks import _dot_values, assert_same
from test_op_table import CASES, DIRECTIONAL, LEVELS, op_bundle

NAMES = list(CASES)

# Central differences with step h = 1e-5 along v (|v| ~ 1 per element): truncation error
# h^2 |f'''| / 6 ~ 1e-10 and rounding eps |f| / h ~ 1e-11 for the O(1) values here, so
# 1e-6 relative (plus 1e-8 absolute for results that are 0) leaves a wide margin while
# a wrong derivative rule is off by O(1).
FD_RTOL, FD_ATOL = 1e-6, 1e-8


def directional(name):
    op_bundle()
    if name not in DIRECTIONAL:
        raise AssertionError(f"{name}: building the graphs failed: "
                             f"{op_bundle().build_errors.get((name, 1))!r}")
    return DIRECTIONAL[name]


def close(got, want, what, rtol, atol):
    np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(want, np.float64),
                               rtol=rtol, atol=atol, equal_nan=False, err_msg=what)


@pytest.mark.parametrize("name", NAMES)
def test_order1_three_ways_on_the_interpreter(name):
    d = directional(name)
    _, (jvp_dot, vjp_dot) = op_bundle().result((name, 1))
    # jvp and vjp compute the same sum of products in another order: 1e-12
    close(jvp_dot, vjp_dot, f"{name}: <u, J v> by jvp vs by vjp", 1e-12, 1e-13)
    close(jvp_dot, d.fd_directional(), f"{name}: <u, J v> by jvp vs central differences",
          FD_RTOL, FD_ATOL)


@pytest.mark.parametrize("name", NAMES)
def test_order1_on_the_tape(name):
    """The tape's reverse mode seeded with u, dotted with v, against the interpreter's
    jvp; its value against the interpreter's."""
    d = directional(name)
    _, (jvp_dot, _) = op_bundle().result((name, 1))
    _, (_, cost, *_) = op_bundle().result((name, "value"))
    out, grads = d.on_tape()
    close(np.sum(np.asarray(out) * d.u_value), cost, f"{name}: tape value", 1e-12, 1e-13)
    close(_dot_values(grads, d.v_values), jvp_dot, f"{name}: <u, J v> on the tape vs jvp",
          1e-12, 1e-13)


@pytest.mark.parametrize("name", NAMES)
def test_order2_three_ways_on_the_interpreter(name):
    d = directional(name)
    _, hvps = op_bundle().result((name, 2))
    n = len(d.xs)
    rr, fr = hvps[:n], hvps[n:]
    rf = gc.evaluate(d.hvp_rf(), dict(zip(d.inputs, d.feeds)))     # not compiled: CI time
    fd = d.fd_hvp()
    for i in range(n):
        assert np.shape(rr[i]) == np.shape(d.values[i]), f"{name}: H v shape, input {i}"
        # the three are the same products summed in other orders: 1e-10 relative,
        # 1e-12 absolute (second derivatives of softmax and logsumexp cancel)
        close(fr[i], rr[i], f"{name}: H v, input {i}: jvp of grad vs grad of grad",
              1e-10, 1e-12)
        close(rf[i], rr[i], f"{name}: H v, input {i}: grad of jvp vs grad of grad",
              1e-10, 1e-12)
        close(rr[i], fd[i], f"{name}: H v, input {i}: grad of grad vs central differences "
              "of the gradient", FD_RTOL, FD_ATOL)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("name", NAMES)
def test_compiled_orders_agree_with_the_interpreter(name, order, level):
    """Compiled directional derivatives against the interpreter's; 1e-10 relative: the
    passes reassociate sums of products in second-order graphs."""
    got, want = op_bundle().result((name, order), level)
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        assert_same(g, w, f"{name} order {order} ({level}): output {i}", 1e-10, 1e-12)


def test_order_bundle_covers_every_op():
    """Every op of the table is differentiated twice in the bundle: it occurs in the
    forward graph of some case with order-2 outputs."""
    from checks import builtin_ops, ops_in
    bundle = op_bundle()
    forward = set()
    for name in NAMES:
        if (name, 2) in bundle.entries:
            forward |= ops_in([DIRECTIONAL[name].out])
    missing = builtin_ops() - forward
    assert not missing, f"ops without an order-2 check: {sorted(missing)}"
