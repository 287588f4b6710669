"""Differential fuzzing: random well-typed graphs (tests/strategies.py) must give the
same values and gradients on the reference interpreter, the tape, central finite
differences and compiled Functions at every optimisation level.

Profiles: the default "ci" profile is bounded (a minute or so); for a deeper run

    HYPOTHESIS_PROFILE=deep python -m pytest tests/test_fuzz.py

Compiled code is checked mostly on bundles: GRAPHC_FUZZ_BUNDLE_SIZE random graphs (60)
compiled together, GRAPHC_FUZZ_BUNDLES times (1 in the ci profile, 10 in deep), at
optimize="full" and "none": a few Numba compilations per bundle and level (chunks of
~350 graph nodes, see checks.Bundle) instead of one per graph.  The graphs are drawn with Hypothesis from GRAPHC_FUZZ_SEED (random if
unset; a failure prints the seed and each failing graph as a REGRESSIONS entry).

Every failure found becomes a regression case in REGRESSIONS below."""

import os

import numpy as np
import random

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

import graphc as gc
from graphc import tape
from graphc.ops import OPS

from checks import Bundle, assert_same, builtin_ops, central_difference, ops_in
from strategies import NOT_FUZZED, Case, cases

settings.register_profile("ci", max_examples=40, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("deep", max_examples=2000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)
BUNDLE_SIZE = int(os.environ.get("GRAPHC_FUZZ_BUNDLE_SIZE", "60"))
BUNDLES = int(os.environ.get("GRAPHC_FUZZ_BUNDLES", "1" if PROFILE == "ci" else "10"))
SEED = int(os.environ.get("GRAPHC_FUZZ_SEED", random.randrange(2 ** 32)))


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


def draw_bundles(count, size, draw_seed):
    """`count` lists of `size` random graphs, each list one Hypothesis example
    (generation only: a bundle is not shrunk; its failing graphs are reported one by one
    instead).  Hypothesis's first example is its simplest (every graph minimal), so it
    is skipped."""
    drawn = []

    @seed(draw_seed)
    @settings(max_examples=count + 1, phases=[Phase.generate], database=None,
              deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.data())
    def collect(data):
        drawn.append([data.draw(cases(max_steps=8)) for _ in range(size)])
    collect()
    return drawn[-count:]


_bundles = None


def fuzz_bundles():
    """BUNDLES bundles of BUNDLE_SIZE random graphs each: (bundle, {key: case})."""
    global _bundles
    if _bundles is None:
        _bundles = []
        for b, drawn in enumerate(draw_bundles(BUNDLES, BUNDLE_SIZE, SEED)):
            bundle = Bundle(f"fuzz bundle {b} (GRAPHC_FUZZ_SEED={SEED})")
            for k, case in enumerate(drawn):
                def make(case=case, k=k):
                    inputs = [gc.tensor(f"z{k}_{i}", s) for i, s in enumerate(case.shapes)]
                    cost = case.build(inputs)
                    return inputs, case.values, [cost] + gc.grad(cost, inputs)
                bundle.add(k, make)
            _bundles.append((bundle, dict(enumerate(drawn))))
    return _bundles


def describe(case):
    return (f"    ({case.shapes!r},\n     {[np.round(v, 17).tolist() for v in case.values]!r},\n"
            f"     {case.program!r}),")


def test_bundles_hold_many_graphs():
    """The bundles are big (not silently emptied by a strategy change) and cover the
    strategy's vocabulary of ops."""
    total = sum(len(b) + len(b.build_errors) for b, _ in fuzz_bundles())
    assert total == BUNDLES * BUNDLE_SIZE, total
    covered = set()
    for b, _ in fuzz_bundles():
        covered |= ops_in(b.graphs())
    # the strategies' vocabulary: elementwise ops, reductions and the structure ops
    # gradients are made of; other families (indexing, convolution, linear algebra,
    # random numbers) are covered by the op table's cases (tests/test_op_table.py)
    expected = {n for n in builtin_ops()
                if OPS[n].kind in ("elementwise", "reduction", "meta")
                or n in ("matmul", "transpose", "expand_dims", "broadcast_like")}
    expected -= {"astype", "equal", "less", "less_equal", "greater_equal", "check_index",
                 *NOT_FUZZED}
    # random graphs: a rare op may be absent from one draw, but most of them must be in
    assert len(expected & covered) >= 0.8 * len(expected), sorted(expected - covered)


def test_bundled_graphs_on_the_reference_backends():
    """Interpreter, tape and central differences agree on every bundled graph."""
    failures = []
    for bundle, drawn in fuzz_bundles():
        for k, case in drawn.items():
            try:
                check_reference_backends(case)
            except Exception as exc:
                failures.append(f"{bundle.name}, graph {k}: {type(exc).__name__}: "
                                f"{str(exc)[:400]}\n{describe(case)}")
    assert not failures, f"{len(failures)} failing graphs:\n" + "\n".join(failures[:10])


@pytest.mark.parametrize("level", ["full", "none"])
def test_bundled_graphs_compiled(level):
    """Each bundle compiled (in chunks) at optimize=level; every graph's cost and
    gradients against the interpreter (1e-9: the passes and fused loops reorder sums)."""
    failures = []
    for bundle, drawn in fuzz_bundles():
        for k, case in drawn.items():
            try:
                got, want = bundle.result(k, level)
                assert len(got) == len(want)
                for i, (g, w) in enumerate(zip(got, want)):
                    assert_same(g, w, f"output {i}", 1e-9, 1e-11)
            except AssertionError as exc:
                failures.append(f"{bundle.name}, graph {k} ({level}): {str(exc)[:600]}\n"
                                f"{describe(case)}")
    assert not failures, f"{len(failures)} failing graphs:\n" + "\n".join(failures[:10])
