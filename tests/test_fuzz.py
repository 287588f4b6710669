"""Differential fuzzing: random well-typed graphs (tests/strategies.py) must give the
same values and gradients on the reference interpreter, the tape, central finite
differences and compiled Functions at every optimisation level.

Profiles: the default "ci" profile is bounded (a minute or so); for a deeper run

    HYPOTHESIS_PROFILE=deep python -m pytest tests/test_fuzz.py

Every failure found becomes a regression case in REGRESSIONS below."""

import os

import numpy as np
from hypothesis import HealthCheck, given, settings

import graphc as gc
from graphc import tape

from checks import central_difference
from strategies import Case, cases

settings.register_profile("ci", max_examples=40, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("deep", max_examples=2000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def graph_of(case):
    inputs = [gc.tensor(f"f{i}", s) for i, s in enumerate(case.shapes)]
    cost = case.build(inputs)
    return inputs, [cost] + gc.grad(cost, inputs)


def tape_of(case):
    ts = [tape.Tensor(np.array(v), requires_grad=True) for v in case.values]
    cost = case.build(ts)
    cost.backward()
    # a leaf the cost does not reach keeps .grad None (as in PyTorch): that is zero
    return [cost.data] + [np.zeros(t.shape) if t.grad is None else t.grad for t in ts]


def assert_all_close(got, want, what, rtol=1e-9, atol=1e-11):
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_allclose(np.asarray(g, float), np.asarray(w, float), rtol=rtol,
                                   atol=atol, err_msg=f"{what}, output {i}")


def check_reference_backends(case):
    inputs, outputs = graph_of(case)
    feed = dict(zip(inputs, case.values))
    want = gc.evaluate(outputs, feed)
    assert_all_close(tape_of(case), want, "tape vs evaluate")
    numeric = central_difference(
        lambda vals: float(gc.evaluate(outputs[0], dict(zip(inputs, vals)))), case.values)
    assert_all_close(numeric, want[1:], "finite differences vs evaluate", 1e-4, 1e-6)
    return inputs, outputs, want


@given(cases())
def test_interpreter_tape_and_finite_differences_agree(case):
    check_reference_backends(case)


@settings(max_examples=int(os.environ.get("GRAPHC_FUZZ_COMPILED", "6")))
@given(cases(max_steps=5))
def test_compiled_agrees_at_every_optimisation_level(case):
    inputs, outputs, want = check_reference_backends(case)
    for level in ("full", "none"):
        got = gc.compile(inputs, outputs, optimize=level)(*case.values)
        assert_all_close(got, want, f"compiled ({level}) vs evaluate")


REGRESSIONS = [
    # (shapes, values, program): failures found by fuzzing, kept as fixed cases
    ([(None, 3), (3,)], [np.linspace(-1, 1, 6).reshape(2, 3), np.array([0.3, -0.2, 0.9])],
     [("binary", "mul", 0, 1), ("reduce", "logsumexp", 2, 1, False), ("unary", "tanh", 3)]),
    ([(2, None)], [np.array([[0.5, -1.0, 2.0], [1.5, 0.1, -0.3]])],
     [("reduce", "max", 0, 0, True), ("binary", "sub", 0, 1), ("unary", "relu", 2),
      ("binary", "mul", 3, 0)]),
]


def test_regressions():
    for shapes, values, program in REGRESSIONS:
        case = Case(shapes, values, program)
        inputs, outputs, want = check_reference_backends(case)
        assert_all_close(gc.compile(inputs, outputs)(*values), want, "compiled")
