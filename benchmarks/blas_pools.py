"""BLAS pools on a shared machine: a compiled MLP step beside NumPy matrix work, and a
`graphc train` epoch beside a busy process (issue 17, item 3).

Part 1 (one process): the W5 ReLU step at B=128 compiled, a 64x784 @ 784x784 float32
NumPy product, and the two in one loop, interleaved, medians; for graphc's default (the
compiled code's BLAS - SciPy's OpenBLAS - at GRAPHC_BLAS_THREADS=1 thread) and for both
pools at their default thread counts.  Target: (mixed - NumPy alone) <= 1.2x the step.

Part 2 (subprocesses): `graphc train --epochs 3 --no-progress`, median epoch, quiet and
beside `python -c "while True: pass"`.  Target: busy <= 2.0x quiet.

    python benchmarks/blas_pools.py [--rounds 15] [--skip-train]
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def part1(rounds):
    import threadpoolctl

    import graphc as gc
    import workloads as W
    from graphc import blas

    inputs, _, outputs = W.w5_graph("relu")
    step = gc.compile(inputs, outputs)
    values = W.w5_values(128)
    rng = np.random.default_rng(0)
    A = rng.random((64, 784), dtype=np.float32)
    B = rng.random((784, 784), dtype=np.float32)
    C = np.empty((64, 784), np.float32)
    step(*values)
    pools = blas.compiled_code_pools()
    ours = {p.filepath for p in pools}
    numpy_pools = [lib for lib in threadpoolctl.ThreadpoolController().lib_controllers
                   if lib.user_api == "blas" and lib.filepath not in ours]
    default = {id(p): p.num_threads for p in pools + numpy_pools}
    cores = os.cpu_count()

    def configs():
        yield "graphc default (compiled-code BLAS at 1 thread)", 1, cores
        yield "and NumPy's pool at 1 thread (threadpool_limits(1))", 1, 1
        yield f"both pools at {cores} threads (before)", cores, cores

    number = 20
    print("| configuration | step (µs) | NumPy product (µs) | mixed (µs) | "
          "(mixed − NumPy) / step |")
    print("|---|---:|---:|---:|---:|")
    for label, n, n_numpy in configs():
        for p in pools:
            p.set_num_threads(n)
        for p in numpy_pools:
            p.set_num_threads(n_numpy)
        systems = {"step": lambda: step(*values), "numpy": lambda: np.matmul(A, B, out=C)}
        systems["mixed"] = lambda: (step(*values), np.matmul(A, B, out=C))
        times = {k: [] for k in systems}
        for _ in range(rounds):
            for k, f in systems.items():
                t = time.perf_counter()
                for _ in range(number):
                    f()
                times[k].append((time.perf_counter() - t) / number * 1e6)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"| {label} | {med['step']:.0f} | {med['numpy']:.0f} | {med['mixed']:.0f} | "
              f"{(med['mixed'] - med['numpy']) / med['step']:.2f} |", flush=True)
    for p in pools + numpy_pools:
        p.set_num_threads(default[id(p)])


def epoch(env_extra=None):
    env = dict(os.environ, **(env_extra or {}))
    out = subprocess.run([sys.executable, "-m", "graphc.cli", "train", "--epochs", "3",
                          "--no-progress"], capture_output=True, text=True, env=env,
                         check=True).stdout
    times = [float(t) for t in re.findall(r"\(([\d.]+) s\)", out)]
    return statistics.median(times[1:])          # epoch 1 includes loading the kernels


def part2(rounds, threads):
    print("\n| `graphc train --epochs 3` | quiet (s per epoch) | one core busy | busy / quiet |")
    print("|---|---:|---:|---:|")
    for label, env in (("GRAPHC_BLAS_THREADS=1 (default)", {}),
                       ("and NumPy's pool at 1 (OPENBLAS_NUM_THREADS=1)",
                        {"OPENBLAS_NUM_THREADS": "1"}),
                       (f"GRAPHC_BLAS_THREADS={threads} (before)",
                        {"GRAPHC_BLAS_THREADS": str(threads)})):
        epoch(env)                                 # warm the disk cache
        quiet, busy = [], []
        for _ in range(rounds):
            quiet.append(epoch(env))
            spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            try:
                time.sleep(0.2)
                busy.append(epoch(env))
            finally:
                spin.kill()
                spin.wait()
        q, b = statistics.median(quiet), statistics.median(busy)
        print(f"| {label} | {q:.3f} | {b:.3f} | {b / q:.2f}× |", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--train-rounds", type=int, default=3)
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--skip-mixed", action="store_true")
    args = parser.parse_args(argv)
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start, "
          f"{time.strftime('%Y-%m-%d %H:%M')}\n")
    if not args.skip_mixed:
        part1(args.rounds)
    if not args.skip_train:
        part2(args.train_rounds, os.cpu_count())


if __name__ == "__main__":
    main()
