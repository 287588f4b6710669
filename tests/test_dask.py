"""graphc on Dask: a Function pickles (and is refused when corrupted), distributed
gradients equal local ones for uneven chunks, a worker killed mid-run changes nothing,
minimize reaches the local L-BFGS optimum, and fit with a client follows the local fit.

One LocalCluster (2 worker processes) serves the module, and three graphs are compiled
in all (Numba compiles are the slow part); the workers load them from the caches that
this process fills (``GRAPHC_CACHE_DIR`` and ``NUMBA_CACHE_DIR`` are inherited)."""

import itertools
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import graphc as gc
from graphc import optim, train

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")
gd = pytest.importorskip("graphc.dask")

FEATURES = 5


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster, set_as_default=False) as c:
        c.wait_for_workers(2, timeout=120)    # fail, rather than wait, without workers
        yield c


@pytest.fixture(scope="module")
def model():
    """Logistic regression: a mean loss, its gradient Function (and a check_finite one),
    and data-parallel training steps over the same graph."""
    X, y = gc.tensor("X", (None, FEATURES)), gc.vector("y")
    w, b = gc.vector("w", FEATURES), gc.vector("b", 1)
    z = X @ w + b
    loss = gc.mean(gc.softplus(z) - y * z)
    outputs = [loss, *gc.grad(loss, [w, b])]
    fn = gc.compile([X, y, w, b], outputs)
    checked = gc.compile([X, y, w, b], outputs, check_finite=True)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2000, FEATURES))
    labels = (x @ np.linspace(-1, 1, FEATURES) + 0.3 + rng.standard_normal(2000) > 0) * 1.0
    params = [rng.standard_normal(FEATURES), np.array([0.1])]
    init = {w: np.zeros(FEATURES), b: np.zeros(1)}

    def make_step():
        return gd.compile_step(loss, [w, b], [X, y], optim.SGD(0.5, momentum=0.9), init=init)
    fn(x, labels, *params)                  # fills Numba's cache before the workers need it
    checked(x, labels, *params)
    return {"fn": fn, "checked": checked, "x": x, "y": labels, "params": params,
            "make_step": make_step}


def relative_error(got, want):
    """Largest difference over the largest magnitude (the gradient as a whole)."""
    return np.max(np.abs(np.asarray(got) - want)) / np.max(np.abs(want))


# ---------------------------------------------------------------------------------
# A Function travels
# ---------------------------------------------------------------------------------

def test_pickle_round_trip_in_a_fresh_process(model, tmp_path):
    fn = model["fn"]
    exported = gc.export(fn, tmp_path / "logistic.py")
    (tmp_path / "fn.pkl").write_bytes(pickle.dumps(fn))
    (tmp_path / "exported.pkl").write_bytes(
        pickle.dumps(gc.function.load_exported(exported)))
    np.save(tmp_path / "x.npy", model["x"])
    np.save(tmp_path / "y.npy", model["y"])
    script = textwrap.dedent(f"""
        import pickle
        from pathlib import Path
        import numpy as np
        import graphc.function
        graphc.function.generate_source = None     # unpickling must not generate code
        d = Path({str(tmp_path)!r})
        x, y = np.load(d / "x.npy"), np.load(d / "y.npy")
        w, b = np.linspace(-1, 1, {FEATURES}), np.array([0.1])
        for name in ("fn.pkl", "exported.pkl"):
            f = pickle.loads((d / name).read_bytes())
            value, gw, gb = f(x, y, w, b)
            print(name, repr(float(value)), *map(repr, gw.tolist()), repr(float(gb[0])))
    """)
    fresh = tmp_path / "fresh-cache"                 # as on a machine that never saw it
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(fresh))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, check=True, env=env).stdout.splitlines()
    value, gw, gb = fn(model["x"], model["y"], np.linspace(-1, 1, FEATURES), np.array([0.1]))
    want = " ".join([repr(float(value)), *map(repr, gw.tolist()), repr(float(gb[0]))])
    assert out == [f"fn.pkl {want}", f"exported.pkl {want}"]   # bit for bit
    assert (fresh / f"graphc_{fn.key[:32]}.py").exists()     # stored in that cache


def test_corrupted_or_foreign_pickle_is_refused(model):
    data = pickle.dumps(model["fn"])
    at = data.index(b"def _kernel(") + 4
    corrupted = data[:at] + b"K" + data[at + 1:]
    with pytest.raises(pickle.UnpicklingError, match="checksum"):
        pickle.loads(corrupted)
    foreign = data.replace(b"graphc.Function/1", b"graphc.Function/9")
    with pytest.raises(pickle.UnpicklingError, match="not a graphc Function pickle"):
        pickle.loads(foreign)


def test_graphc_imports_without_dask_and_says_how_to_get_it():
    script = textwrap.dedent("""
        import sys
        sys.modules["dask"] = sys.modules["distributed"] = None   # as if not installed
        import graphc
        from graphc import train
        for use in (lambda: __import__("graphc.dask"),
                    lambda: train.fit(None, [1], [1], client=object())):
            try:
                use()
            except ImportError as exc:
                print(exc)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, check=True).stdout.splitlines()
    assert len(out) == 2
    assert all('pip install "graphc[dask]"' in line for line in out)


# ---------------------------------------------------------------------------------
# Distributed gradients
# ---------------------------------------------------------------------------------

def test_distributed_gradient_equals_local_for_uneven_chunks(client, model):
    fn, x, y, params = model["fn"], model["x"], model["y"], model["params"]
    chunks = (1, 37, 0, 500, 1, 1461)
    xd = da.from_array(x, chunks=(chunks, FEATURES))
    yd = da.from_array(y, chunks=400)            # other chunks: aligned to x's
    value, grads = gd.value_and_grad(fn, xd, yd, params=params, reduce="mean", client=client,
                                     split_every=2)
    local = fn(x, y, *params)
    assert relative_error(value, local[0]) < 1e-12
    for got, want in zip(grads, local[1:]):
        assert got.shape == want.shape and got.dtype == want.dtype
        assert relative_error(got, want) < 1e-12
    # "sum" adds the per-chunk results as they are: here, per-chunk means
    value, grads = gd.value_and_grad(fn, xd, y, params=params, reduce="sum", client=client)
    bounds = np.cumsum((0,) + chunks)
    parts = [fn(x[a:c], y[a:c], *params) for a, c in itertools.pairwise(bounds) if c > a]
    assert relative_error(value, sum(p[0] for p in parts)) < 1e-12
    assert relative_error(grads[0], sum(p[1] for p in parts)) < 1e-12


def test_bad_calls_are_refused_before_any_task(client, model):
    fn, x, y = model["fn"], model["x"], model["y"]
    xd = da.from_array(x, chunks=500)
    with pytest.raises(TypeError, match="4 inputs"):
        gd.value_and_grad(fn, xd, y, params=model["params"][:1], client=client)
    with pytest.raises(ValueError, match="different numbers of rows"):
        gd.value_and_grad(fn, xd, y[:-1], params=model["params"], client=client)
    with pytest.raises(ValueError, match="reduce"):
        gd.value_and_grad(fn, xd, y, params=model["params"], reduce="max", client=client)


def test_a_chunk_with_nans_raises_the_local_error(client, model):
    checked, x, y, params = model["checked"], model["x"].copy(), model["y"], model["params"]
    x[1234, 2] = np.nan
    with pytest.raises(FloatingPointError) as local:
        checked(x, y, *params)
    with pytest.raises(FloatingPointError) as remote:
        gd.value_and_grad(checked, da.from_array(x, chunks=300), y, params=params,
                          reduce="mean", client=client)
    assert "NaN or Inf first produced by" in str(local.value)
    assert str(remote.value) == str(local.value)


def test_minimize_reaches_the_local_lbfgs_optimum(client, model):
    from scipy.optimize import minimize
    fn, x, y = model["fn"], model["x"], model["y"]

    def local(p):
        value, gw, gb = fn(x, y, p[:FEATURES], p[FEATURES:])
        return float(value), np.concatenate([gw, gb])
    want = minimize(local, np.zeros(FEATURES + 1), jac=True, method="L-BFGS-B")
    got = gd.minimize(fn, [np.zeros(FEATURES), np.zeros(1)], da.from_array(x, chunks=300),
                      da.from_array(y, chunks=300), client=client)
    assert got.success and want.success
    assert abs(got.fun - want.fun) <= 1e-10 * abs(want.fun)
    np.testing.assert_allclose(got.x, want.x, rtol=1e-7, atol=1e-9)
    assert [p.shape for p in got.params] == [(FEATURES,), (1,)]


def test_embedded_default_cluster(model):
    """No client and no default client: a LocalCluster is started for the call."""
    fn, x, y, params = model["fn"], model["x"], model["y"], model["params"]
    value, _ = gd.value_and_grad(fn, da.from_array(x, chunks=700), y, params=params,
                                 reduce="mean")
    assert relative_error(value, fn(x, y, *params)[0]) < 1e-12
    with pytest.raises(ValueError):
        distributed.default_client()          # and it was closed again


# ---------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------

def test_fit_with_a_client_follows_the_local_fit(client, model):
    x, y = model["x"], model["y"]
    here, there = model["make_step"](), model["make_step"]()
    options = {"epochs": 2, "batch_size": 100, "progress": False}
    local = train.fit(here, x, y, **options)
    remote = train.fit(there, x, y, client=client, **options)
    np.testing.assert_allclose(remote["loss"], local["loss"], rtol=1e-10)
    for name in here.params:
        np.testing.assert_allclose(there.params[name], here.params[name], rtol=1e-10)
    assert there.step == here.step == 40
    with pytest.raises(TypeError, match="graphc.dask.compile_step"):
        train.fit(here.apply, x, y, client=client, **options)   # a fused TrainStep


def test_local_sgd_converges_like_the_local_fit(client, model):
    x, y = model["x"], model["y"]
    here, there = model["make_step"](), model["make_step"]()
    options = {"epochs": 6, "batch_size": 100, "progress": False}
    train.fit(here, x, y, **options)
    remote = train.fit(there, x, y, client=client, data_parallel="local", sync_every=4,
                       **options)
    full = [float(model["fn"](x, y, s.params["w"], s.params["b"])[0]) for s in (here, there)]
    assert remote["loss"][-1] < remote["loss"][0]
    assert abs(full[1] - full[0]) < 0.03 * full[0]      # on all the data, at the end


# ---------------------------------------------------------------------------------
# Faults (last: the cluster restarts a worker)
# ---------------------------------------------------------------------------------

def test_a_worker_killed_mid_run_changes_nothing(client, model):
    fn, x, y, params = model["fn"], model["x"], model["y"], model["params"]
    # chunks that take a while to load, so that the kill lands mid-run
    xd = da.from_array(x, chunks=(250, FEATURES)).map_blocks(
        lambda block: (time.sleep(0.4), block)[1], dtype=x.dtype)
    yd = da.from_array(y, chunks=250)
    want = gd.value_and_grad(fn, xd, yd, params=params, reduce="mean", client=client)
    result = {}
    run = threading.Thread(target=lambda: result.update(got=gd.value_and_grad(
        fn, xd, yd, params=params, reduce="mean", client=client)))
    pids = client.run(os.getpid)
    victim = min(pids)
    run.start()
    deadline = time.monotonic() + 30
    while not client.processing().get(victim) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert client.processing().get(victim), "no task ever ran on the worker to kill"
    os.kill(pids[victim], signal.SIGKILL)
    run.join(120)
    assert not run.is_alive()
    value, grads = result["got"]
    assert value == want[0]                    # the same tree of additions: bit for bit
    for got, expected in zip(grads, want[1]):
        np.testing.assert_array_equal(got, expected)
    client.wait_for_workers(2, timeout=60)
