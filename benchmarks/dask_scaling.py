"""graphc on Dask: how a compiled gradient scales over workers, what a call and a task
cost, and how fast an unpickled Function is ready; then an MNIST-sized MLP epoch via
``train.fit(client=...)``, synchronous and local SGD.  Prints tables (medians).

    python benchmarks/dask_scaling.py [--rows 10000000] [--chunk 1000000] [--repeats 7]
                                      [--only gradient,overhead,unpickle,fit]

The logistic-regression data (rows × 32 float64) are made chunk by chunk from seeds,
on the workers for the cluster runs and in this process for the local ones, so the
same numbers never travel; every distributed result is checked against the local one.

BLAS runs single-threaded in this process unless ``OPENBLAS_NUM_THREADS`` says
otherwise, as it does in Dask's workers: on a shared machine, OpenBLAS threads that wait
for a busy core made a 0.5 ms MLP step take 60 ms.  ``parallel=True`` still runs the
fused loops on every core; ``OPENBLAS_NUM_THREADS=2`` also makes the products parallel.
"""

from __future__ import annotations

import argparse
import os
import pickle
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("GRAPHC_CACHE_DIR", tempfile.mkdtemp(prefix="graphc-dask-"))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import dask  # noqa: E402
import dask.array as da  # noqa: E402
import distributed  # noqa: E402
import numpy as np  # noqa: E402

import graphc as gc  # noqa: E402
import graphc.dask as gd  # noqa: E402
from graphc import data, nn, optim, train  # noqa: E402

FEATURES = 32
TRUE_W = np.linspace(-1, 1, FEATURES)


def logistic(parallel=False):
    X, y = gc.tensor("X", (None, FEATURES)), gc.vector("y")
    w, b = gc.vector("w", FEATURES), gc.vector("b", 1)
    z = X @ w + b
    loss = gc.mean(gc.softplus(z) - y * z)
    return gc.compile([X, y, w, b], [loss, *gc.grad(loss, [w, b])], parallel=parallel)


def make_x(seed, rows):
    return np.random.default_rng(seed).standard_normal((rows, FEATURES))


def make_y(seed, rows):
    x = make_x(seed, rows)
    noise = np.random.default_rng(seed + 10 ** 6).logistic(size=rows)
    return (x @ TRUE_W + 0.5 + noise > 0).astype(np.float64)


def chunk_sizes(rows, chunk):
    return [min(chunk, rows - start) for start in range(0, rows, chunk)]


def cluster_data(rows, chunk):
    sizes = chunk_sizes(rows, chunk)
    x = da.concatenate([da.from_delayed(dask.delayed(make_x)(i, n), (n, FEATURES), np.float64)
                        for i, n in enumerate(sizes)])
    y = da.concatenate([da.from_delayed(dask.delayed(make_y)(i, n), (n,), np.float64)
                        for i, n in enumerate(sizes)])
    return x, y


def local_data(rows, chunk):
    sizes = chunk_sizes(rows, chunk)
    return (np.concatenate([make_x(i, n) for i, n in enumerate(sizes)]),
            np.concatenate([make_y(i, n) for i, n in enumerate(sizes)]))


def median_time(f, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return float(np.median(times)), times


def start_cluster(workers):
    cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1,
                                       processes=True, dashboard_address=":0")
    return cluster, distributed.Client(cluster, set_as_default=False)


def persisted(client, *arrays):
    """Wait until `arrays` are in the workers' memory."""
    with client.as_current():
        distributed.wait(distributed.futures_of(arrays))


def relative_error(got, want):
    return max(np.max(np.abs(np.asarray(g) - w)) / max(np.max(np.abs(w)), 1e-300)
               for g, w in zip(got, want))


def local_gradients(args, fn, params):
    """The local reference result and the timings of the local Functions."""
    fn_par = logistic(parallel=True)
    t = time.perf_counter()
    x, y = local_data(args.rows, args.chunk)
    print(f"data: {args.rows:,} x {FEATURES} float64 ({x.nbytes / 1e9:.2f} GB), chunks of "
          f"{args.chunk:,}; made locally in {time.perf_counter() - t:.1f} s", flush=True)
    fn(x[:10], y[:10], *params), fn_par(x[:10], y[:10], *params)     # Numba compiles
    want = fn(x, y, *params)
    rows = []
    for name, f in (("local compiled Function", fn), ("local, parallel=True", fn_par)):
        med, times = median_time(lambda f=f: f(x, y, *params), args.repeats)
        rows.append((name, med, times, relative_error(f(x, y, *params), want)))
    return want, rows


def bench_gradient(args):
    """Local serial, local parallel=True, and 1 and 2 workers on the same data."""
    fn = logistic()
    params = [np.full(FEATURES, 0.1), np.array([0.2])]
    want, rows = local_gradients(args, fn, params)       # the local arrays are freed
    for workers in (1, 2):
        cluster, client = start_cluster(workers)
        with cluster, client:
            xd, yd = client.persist(list(cluster_data(args.rows, args.chunk)))
            persisted(client, xd, yd)

            def call(xd=xd, yd=yd, client=client):
                return gd.value_and_grad(fn, xd, yd, params=params, reduce="mean",
                                         client=client)
            value, grads = call()
            med, times = median_time(call, args.repeats)
            rows.append((f"LocalCluster, {workers} worker{'s' * (workers > 1)}", med, times,
                         relative_error([value, *grads], want)))
    print(f"\nvalue and gradient over {args.rows:,} rows (median of {args.repeats}; "
          "rel. error vs the local call)")
    print(f"{'system':<26} {'median s':>9} {'min s':>7} {'max s':>7}  {'rel. error':>10}")
    for name, med, times, err in rows:
        print(f"{name:<26} {med:9.3f} {min(times):7.3f} {max(times):7.3f}  {err:10.1e}")
    serial, par, one, two = (r[1] for r in rows)
    print(f"2 workers vs 1: {one / two:.2f}x;  2 workers vs local parallel=True: "
          f"{two / par:.2f}x the time;  1 worker vs local serial: {one / serial:.2f}x the time")


def bench_overhead(args):
    """A warm cluster: the fixed cost of a call, the cost of each further task, and the
    bytes a call moves."""
    fn = logistic()
    params = [np.full(FEATURES, 0.1), np.array([0.2])]
    cluster, client = start_cluster(2)
    with cluster, client:
        print("\nper-call and per-task overhead (2 workers, tiny chunks: 10 rows each)")
        print(f"{'chunks':>7} {'tasks':>6} {'median ms':>10} {'ms per chunk':>13}")
        results = {}
        for chunks in (2, 16, 128):
            xd, yd = client.persist(list(cluster_data(10 * chunks, 10)))
            persisted(client, xd, yd)

            def call(xd=xd, yd=yd):
                return gd.value_and_grad(fn, xd, yd, params=params, client=client)
            call()                                                           # warm
            med, _ = median_time(call, args.calls)
            graph = gd.gradient.gradient_graph(fn, [xd, yd], params).__dask_graph__()
            tasks = sum(str(key).startswith(("_shared", "_chunk", "add", "_finish"))
                        for key in dict(graph))
            results[chunks] = med
            print(f"{chunks:7d} {tasks:6d} {med * 1e3:10.2f} {med * 1e3 / chunks:13.3f}")
        floor, _ = median_time(lambda: client.submit(int, 1, pure=False).result(), args.calls)
        many, _ = median_time(lambda: client.gather(client.map(int, range(128), pure=False)),
                              args.calls)
        print(f"Dask alone, at the same time: one trivial task {floor * 1e3:.2f} ms round trip; "
              f"128 independent trivial tasks {many * 1e3:.1f} ms ({many / 128 * 1e3:.2f} ms each)")
        per_chunk = (results[128] - results[16]) / (128 - 16)
        print(f"marginal cost of a chunk (its task and its share of the tree): "
              f"{per_chunk * 1e3:.2f} ms; fixed cost of a call: "
              f"{(results[2] - 2 * per_chunk) * 1e3:.1f} ms")
        shared = len(pickle.dumps((fn, params), protocol=5))
        part = len(pickle.dumps(gd.reduce.partial(10, fn(np.zeros((10, FEATURES)),
                                                          np.zeros(10), *params), "mean")))
        print(f"bytes per call: the Function and parameters {shared:,} B to each worker; "
              f"{part} B per partial result (one per task of the tree)")


def bench_unpickle(args):
    """A fresh process (like a new worker) with warm caches: unpickle, then first call."""
    fn = logistic()
    fn(np.zeros((4, FEATURES)), np.zeros(4), np.zeros(FEATURES), np.zeros(1))  # fills caches
    with tempfile.NamedTemporaryFile(suffix=".pkl", delete=False) as f:
        f.write(pickle.dumps(fn))
    script = f"""
import time
t0 = time.perf_counter()
import pickle, numpy as np, graphc
t1 = time.perf_counter()
fn = pickle.loads(open({f.name!r}, "rb").read())
t2 = time.perf_counter()
fn(np.zeros((4, {FEATURES})), np.zeros(4), np.zeros({FEATURES}), np.zeros(1))
t3 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2)
"""
    runs = [list(map(float, subprocess.run([sys.executable, "-c", script], check=True,
                                           capture_output=True, text=True).stdout.split()))
            for _ in range(args.repeats)]
    imp, load, call = np.median(np.array(runs), axis=0)
    os.unlink(f.name)
    print(f"\nunpickling in a fresh process, warm graphc and Numba caches (median of "
          f"{args.repeats} processes): import graphc {imp:.3f} s; pickle.loads {load:.3f} s; "
          f"first call {call:.3f} s (Numba loads the machine code); ready "
          f"{load + call:.3f} s after the import")


def bench_fit(args):
    """One epoch of the 784-128-10 MLP (Adam, batch 64): locally, synchronous
    data-parallel on 2 workers, and local SGD."""
    mnist = data.load_mnist()
    x, y = mnist.x_train, data.one_hot(mnist.y_train)
    X, Y = gc.tensor("X", (None, 784), "float32"), gc.tensor("Y", (None, 10), "float32")
    logits, params, init = nn.mlp(X, (784, 128, 10), "relu")
    loss = nn.softmax_cross_entropy(logits, Y)
    measure = gc.compile([X, Y] + params, loss)

    def full_loss(step):
        return float(measure(x, y, *[step.params[p.name] for p in params]))

    def make():
        return gd.compile_step(loss, params, [X, Y], optim.Adam(1e-3), init=init)
    make()(x[:64], y[:64])                                        # Numba compiles
    cluster, client = start_cluster(2)
    rows = []
    with cluster, client:
        for batch in (64, 1024):
            configs = [("local", {}), ("sync, 2 workers", {"client": client})]
            configs += [(f"local SGD, k={k}", {"client": client, "data_parallel": "local",
                                               "sync_every": k}) for k in (8, 32)]
            for name, options in configs:
                times, losses = [], []
                for _ in range(args.fit_repeats):
                    step = make()
                    history = train.fit(step, x, y, epochs=1, batch_size=batch,
                                        progress=False, **options)
                    times.append(history["seconds"][0])
                    losses.append(full_loss(step))
                rows.append((batch, name, float(np.median(times)), float(np.median(losses))))
    print(f"\nMLP 784-128-10, Adam 1e-3, one epoch over {len(x):,} digits (median of "
          f"{args.fit_repeats} epochs from the same start)")
    print(f"{'batch':>5}  {'mode':<18} {'s/epoch':>8} {'ms/step':>8} {'loss after':>10}")
    for batch, name, seconds, value in rows:
        steps = -(-len(x) // batch)
        print(f"{batch:5d}  {name:<18} {seconds:8.2f} {seconds / steps * 1e3:8.2f} "
              f"{value:10.4f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--chunk", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--fit-repeats", type=int, default=3)
    parser.add_argument("--only", default="gradient,overhead,unpickle,fit")
    args = parser.parse_args(argv)
    print(f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f}; dask "
          f"{dask.__version__}; OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']} here")
    benches = {"gradient": bench_gradient, "overhead": bench_overhead,
               "unpickle": bench_unpickle, "fit": bench_fit}
    for name in args.only.split(","):
        benches[name](args)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
