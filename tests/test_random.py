"""gc.random and gc.nn.dropout: the generator against Random123's known answers and an
independent NumPy Philox, bit-identity across backends (evaluate, tape, compiled serial
and parallel, exported), statistics, dropout's scaling and gradient, and training."""

import numpy as np
import pytest
from scipy import stats

import graphc as gc
from graphc import nn, optim, tape, train
from op_cases_random import philox4x32_10, reference_normal, reference_uniform

KAT = [  # Random123's kat_vectors for philox4x32_10: counter, key -> output
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


def _signed(v):
    return v - 2 ** 64 if v >= 2 ** 63 else v


@pytest.mark.parametrize("counter, key, expected", KAT)
def test_philox_known_answers(counter, key, expected):
    """The compiled generator (the shared runtime's helper) and the tests' NumPy one."""
    assert tuple(int(w) for w in philox4x32_10([counter], key)[0]) == expected
    from graphc.codegen.runtime import shared
    words = np.zeros((4, 1), dtype=np.uint64)
    start = _signed(counter[0] | counter[1] << 32)
    seed = _signed(key[0] | key[1] << 32)
    shared()._philox_chunk(words[0], words[1], words[2], words[3], np.int64(start), 1,
                           np.int64(seed), np.int64(counter[2]), np.int64(counter[3]))
    assert tuple(int(w) for w in words[:, 0]) == expected


# ---------------------------------------------------------------------------------
# One graph of every kind of random result, compiled serially and in parallel
# ---------------------------------------------------------------------------------

S = gc.random.seed()
X = gc.tensor("X", (None, 600), "float32")
OUTPUTS = {
    "uniform f64 (odd size)": gc.random.uniform(S, (7, 3)),
    "uniform f32 low/high": gc.random.uniform(S, (5,), low=-2.0, high=3.0, dtype="float32"),
    "uniform key 1": gc.random.uniform(S, (7, 3), key=1),
    "normal f64": gc.random.normal(S, (9,)),
    "normal f32": gc.random.normal(S, (2, 5), dtype="float32"),
    "normal scalar": gc.random.normal(S),
    "bernoulli": gc.random.bernoulli(S, 0.25, (33,)),
    "uniform_like (dynamic)": gc.random.uniform_like(S, X),
    "dropout (dynamic, large)": nn.dropout(X, 0.3, S),
}
SEEDS = (0, 12345, -7, 2 ** 62 + 3)


def _x(rows=512):
    return np.random.default_rng(0).standard_normal((rows, 600)).astype(np.float32)


@pytest.fixture(scope="module")
def reference():
    x = _x()
    return {s: dict(zip(OUTPUTS, gc.evaluate(list(OUTPUTS.values()), {S: s, X: x})))
            for s in SEEDS}


@pytest.fixture(scope="module", params=[False, True], ids=["serial", "parallel"])
def compiled(request):
    return gc.compile([S, X], list(OUTPUTS.values()), parallel=request.param)


def test_evaluate_matches_the_numpy_philox(reference):
    for s, got in reference.items():
        assert np.array_equal(got["uniform f64 (odd size)"], reference_uniform(s, (7, 3)))
        assert np.array_equal(got["uniform f32 low/high"],
                              reference_uniform(s, (5,), -2.0, 3.0, "float32"))
        assert np.array_equal(got["uniform key 1"], reference_uniform(s, (7, 3), key=1))
        assert np.array_equal(got["uniform_like (dynamic)"],
                              reference_uniform(s, (512, 600), dtype="float32"))
        np.testing.assert_allclose(got["normal f64"], reference_normal(s, (9,)), rtol=1e-13,
                                   atol=1e-14)
        assert got["normal scalar"] == got["normal f64"][0]     # element 0 of the stream
        assert got["bernoulli"].dtype == bool


def test_compiled_is_bit_identical_to_evaluate(compiled, reference):
    x = _x()
    for s in SEEDS:
        got = compiled(s, x)
        for (name, want), g in zip(reference[s].items(), got):
            assert np.asarray(g).dtype == np.asarray(want).dtype, name
            assert np.array_equal(g, want), f"seed {s}: {name} differs from evaluate"


def test_dynamic_shape_follows_the_batch(compiled, reference):
    """Element i depends only on (seed, key, i): a smaller batch is a prefix."""
    got = compiled(5, _x(3))
    full = gc.evaluate(OUTPUTS["uniform_like (dynamic)"], {S: 5, X: _x()})
    assert got[7].shape == (3, 600) and np.array_equal(got[7], full[:3])


def test_tape_and_export_are_bit_identical(tmp_path):
    x = _x(4)
    want = gc.evaluate([OUTPUTS["uniform_like (dynamic)"], OUTPUTS["normal f32"]], {S: 77, X: x})
    t = tape.Tensor(x, requires_grad=True)
    assert np.array_equal(gc.random.uniform_like(77, t).data, want[0])
    fn = gc.compile([S, X], [OUTPUTS["uniform_like (dynamic)"], OUTPUTS["normal f32"]])
    path = tmp_path / "random_export.py"
    gc.export(fn, path)
    import importlib.util
    spec = importlib.util.spec_from_file_location("random_export", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for g, w in zip(module.fn(77, x), want):
        assert np.array_equal(g, w)


def test_normal_on_the_tape_is_the_graphs():
    t = tape.Tensor(np.ones((2, 5)), requires_grad=True)
    out = t * gc.random.normal(77, (2, 5))
    gc.sum(out).backward()
    want = gc.evaluate(gc.random.normal(77, (2, 5)), {})
    assert np.array_equal(out.data, want) and np.array_equal(t.grad, want)


def test_random_numbers_in_a_compiled_loop():
    """Keyed by seed + i, every iteration of a loop draws its own numbers; the compiled
    loop body calls the same generator."""
    x = gc.tensor("x", (3,))
    out = gc.fori_loop(0, 4, lambda i, c: c * 0.5 + gc.random.uniform(S + i, (3,)), x)
    fn = gc.compile([S, x], [out, gc.grad(gc.sum(out), x)])
    got, g = fn(5, np.zeros(3))
    want = np.zeros(3)
    for k in range(5, 9):
        want = want * 0.5 + reference_uniform(k, (3,))
    assert np.array_equal(got, gc.evaluate(out, {S: 5, x: np.zeros(3)}))
    np.testing.assert_allclose(got, want, rtol=1e-15)
    np.testing.assert_allclose(g, 0.5 ** 4)


# ---------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------

N = 200_000


@pytest.fixture(scope="module")
def samples():
    outs = [gc.random.uniform(S, (N,)), gc.random.uniform(S, (N,), dtype="float32"),
            gc.random.normal(S, (N,)), gc.random.normal(S, (N,), dtype="float32"),
            gc.random.bernoulli(S, 0.3, (N,)), gc.random.uniform(S, (N,), key=1)]
    first = gc.evaluate(outs, {S: 2024})
    other_seed = gc.evaluate(outs[0], {S: 2025})
    return first, other_seed


def test_uniform_statistics(samples):
    (u64, u32, *_), _ = samples
    for u in (u64, u32):
        assert u.min() >= 0.0 and u.max() < 1.0
        assert abs(u.mean() - 0.5) < 4 * np.sqrt(1 / 12 / N)
        assert abs(u.var() - 1 / 12) < 0.002
        assert stats.kstest(u, "uniform").pvalue > 1e-4


def test_normal_statistics(samples):
    (_, _, z64, z32, *_), _ = samples
    for z in (z64, z32):
        assert np.isfinite(z).all()
        assert abs(z.mean()) < 4 / np.sqrt(N)
        assert abs(z.var() - 1.0) < 0.015
        assert abs(stats.skew(z)) < 0.03 and abs(stats.kurtosis(z)) < 0.06
        assert stats.kstest(z, "norm").pvalue > 1e-4
    # the two Box-Muller halves of a block are independent
    assert abs(np.corrcoef(z64[0::2], z64[1::2])[0, 1]) < 4 / np.sqrt(N / 2)


def test_bernoulli_frequency(samples):
    b = samples[0][4]
    assert b.dtype == bool
    assert abs(b.mean() - 0.3) < 4 * np.sqrt(0.3 * 0.7 / N)


def test_streams_are_uncorrelated(samples):
    (u, _, _, _, _, u_key1), u_seed2 = samples
    bound = 4 / np.sqrt(N)
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < bound        # adjacent elements
    assert abs(np.corrcoef(u[:-2], u[2:])[0, 1]) < bound        # across blocks
    assert abs(np.corrcoef(u, u_seed2)[0, 1]) < bound           # seeds s, s + 1
    assert abs(np.corrcoef(u, u_key1)[0, 1]) < bound            # keys 0, 1


def test_seeds_and_keys():
    """Same seed, shape and key: the same numbers (and node, as in JAX); another seed or
    key: others.  Python ints, int32 expressions and negative seeds all work."""
    assert gc.random.uniform(S, (3,)) is gc.random.uniform(S, (3,))
    s32 = gc.scalar("s32", dtype="int32")
    a, b, c = gc.evaluate([gc.random.uniform(s32, (4,)), gc.random.uniform(-1, (4,)),
                           gc.random.uniform(2 ** 64 - 1, (4,))], {s32: -1})
    assert np.array_equal(a, b) and np.array_equal(b, c)
    p = gc.tensor("p", (4,))
    assert gc.random.bernoulli(S, p).shape == (4,)              # p's shape, as in JAX
    assert gc.evaluate(gc.random.bernoulli(S, p), {S: 3, p: [0.0, 1.0, 0.0, 1.0]}).tolist() == [
        False, True, False, True]
    with pytest.raises(TypeError):
        gc.random.uniform(gc.scalar("f"), (3,))
    with pytest.raises(TypeError):
        gc.random.uniform(1.5, (3,))
    with pytest.raises(ValueError):
        gc.random.uniform(0, (3,), key=-1)
    with pytest.raises(gc.ShapeError):
        gc.random.uniform(0, (None, 3))
    with pytest.raises(gc.ShapeError):
        gc.random.uniform(gc.tensor("v", (2,), "int64"), (3,))


# ---------------------------------------------------------------------------------
# Dropout
# ---------------------------------------------------------------------------------

def test_dropout_scaling_and_gradient():
    x = gc.tensor("x", (None, 1000))
    rate = 0.3
    out = nn.dropout(x, rate, S)
    g = gc.grad(gc.sum(out * 2.0), x)
    xv = np.full((50, 1000), 1.5)
    y, gv = gc.evaluate([out, g], {S: 9, x: xv})
    kept = y != 0
    assert abs(kept.mean() - (1 - rate)) < 4 * np.sqrt(rate * (1 - rate) / xv.size)
    assert abs(y.mean() - 1.5) < 0.02                          # expected value preserved
    np.testing.assert_allclose(y[kept], 1.5 / (1 - rate), rtol=1e-15)
    np.testing.assert_array_equal(gv, 2.0 * kept / (1 - rate))  # mask / (1 - rate)
    assert nn.dropout(x, 0.0, S) is x and nn.dropout(x, 0.5, None) is x
    with pytest.raises(ValueError):
        nn.dropout(x, 1.0, S)


def test_two_dropout_layers_have_independent_masks():
    x = gc.tensor("x", (200, 100))
    h1 = nn.dropout(x, 0.5, S)
    h2 = nn.dropout(gc.tanh(x), 0.5, S)
    m1, m2 = (v != 0 for v in gc.evaluate([h1, h2], {S: 1, x: np.ones((200, 100))}))
    assert 0.45 < (m1 == m2).mean() < 0.55
    assert gc.random.structure_key(x) == gc.random.structure_key(gc.tensor("x", (200, 100)))


def test_fit_with_dropout_learns():
    """An MLP with dropout trains with fit (a fresh seed per step, fed by fit); its
    evaluation graph has no dropout and no seed."""
    from graphc import data
    mnist = data.load_mnist(None, seed=0)
    x, y = mnist.x_train[:1500], data.one_hot(mnist.y_train[:1500])
    xt, yt = mnist.x_test[:500], data.one_hot(mnist.y_test[:500])
    X_, Y_ = gc.tensor("X", (None, 784), "float32"), gc.tensor("Y", (None, 10), "float32")
    seed = gc.random.seed()
    logits, params, init = nn.mlp(X_, [784, 64, 10], "relu", dropout_rate=0.2,
                                  dropout_seed=seed)
    loss = nn.softmax_cross_entropy(logits, Y_)
    step = optim.compile_step(loss, params, [X_, Y_], optim.Adam(2e-3), init=init)
    assert step.seed_inputs == (seed,) and step.data_inputs == [X_, Y_]
    measure = gc.compile([X_, Y_] + params, nn.accuracy(nn.mlp_forward(X_, params, "relu"), Y_))

    def evaluate(xv, yv):
        return {"val_accuracy": float(measure(xv, yv, *[step.params[p.name] for p in params]))}
    history = train.fit(step, x, y, epochs=3, batch_size=64, validation=(xt, yt),
                        evaluate=evaluate, progress=False)
    assert history["loss"][-1] < 0.6 * history["loss"][0]
    assert history["val_accuracy"][-1] > 0.8
    # the loss of one batch depends on the seed (the mask), reproducibly
    feed = {X_: x[:64], Y_: y[:64], **{p: step.params[p.name] for p in params}}
    a, b, c = (float(gc.evaluate(loss, {**feed, seed: s})) for s in (1, 2, 1))
    assert a != b and a == c
    assert optim.step_seed(0, 5) == optim.step_seed(0, 5) != optim.step_seed(0, 6)


def test_trace_of_a_graph_with_a_seed():
    """gc.trace tabulates adjoints of the float nodes only (the seed and the mask have
    none)."""
    x = gc.tensor("x", (2, 3))
    cost = gc.sum(nn.dropout(x, 0.5, S, key=0) ** 2)
    t = gc.trace(cost, {S: 1, x: np.ones((2, 3))})
    keep = reference_uniform(1, (2, 3), dtype="float32") >= 0.5
    np.testing.assert_array_equal(t.backward[-1]["value"], 8.0 * keep)


def test_data_parallel_step_feeds_seeds_as_a_train_step():
    """graphc.dask.compile_step's step takes the same seeds as optim.compile_step's, so
    fit (here without a cluster) follows the same trajectory with dropout."""
    pytest.importorskip("dask")
    from graphc import dask as gcd
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((200, 20)), np.eye(3)[rng.integers(0, 3, 200)]
    X_, Y_ = gc.tensor("X", (None, 20)), gc.tensor("Y", (None, 3))
    seed = gc.random.seed()
    logits, params, init = nn.mlp(X_, [20, 16, 3], "relu", dtype="float64",
                                  dropout_rate=0.3, dropout_seed=seed)
    loss = nn.softmax_cross_entropy(logits, Y_)
    steps = [make(loss, params, [X_, Y_], optim.Adam(1e-2), init=init)
             for make in (optim.compile_step, gcd.compile_step)]
    assert steps[1].seed_inputs == (seed,) and steps[1].data_inputs == [X_, Y_]
    histories = [train.fit(s, x, y, epochs=2, batch_size=50, progress=False) for s in steps]
    np.testing.assert_allclose(histories[0]["loss"], histories[1]["loss"], rtol=1e-9)
    for p in params:
        np.testing.assert_allclose(steps[0].params[p.name], steps[1].params[p.name],
                                   rtol=1e-8, atol=1e-12)
    assert steps[1].seeds(shard=1) != steps[1].seeds()
