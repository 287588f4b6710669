"""The cost of dropout in a compiled training step: the demo MLP (784 -> 128 -> 10, ReLU,
Adam, float32) at B=128, without dropout, with dropout after the hidden layer (what
``nn.mlp(..., dropout_rate=...)`` builds), and with dropout on the 784 inputs too;
and the random fill alone (uniform_like of the hidden activations).  The steps run
interleaved (a block of each in turn, the order rotated every round); medians.

    python benchmarks/dropout.py [--batch 128] [--rounds 30] [--reps 20]
"""

import argparse
import time

import numpy as np

import graphc as gc
from graphc import nn, optim


def step_for(kind, batch):
    X, Y = gc.tensor("X", (None, 784), "float32"), gc.tensor("Y", (None, 10), "float32")
    seed = gc.random.seed()
    x = nn.dropout(X, 0.2, seed, key=0) if kind == "inputs + hidden" else X
    logits, params, init = nn.mlp(X, [784, 128, 10], "relu", seed=0)
    rate = 0.0 if kind == "none" else 0.2
    logits = nn.mlp_forward(x, params, "relu", dropout_rate=rate, seed=seed)
    loss = nn.softmax_cross_entropy(logits, Y)
    return optim.compile_step(loss, params, [X, Y], optim.Adam(1e-3), init=init)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    xb = rng.random((args.batch, 784), dtype=np.float32)
    yb = np.eye(10, dtype=np.float32)[rng.integers(0, 10, args.batch)]
    systems = {k: step_for(k, args.batch) for k in ("none", "hidden", "inputs + hidden")}
    H = gc.tensor("H", (None, 128), "float32")
    s = gc.random.seed("s")
    fill = gc.compile([s, H], gc.random.uniform_like(s, H, dtype="float32"))
    hb = np.zeros((args.batch, 128), np.float32)
    calls = {f"step, dropout: {k}": (lambda st=st: st(xb, yb)) for k, st in systems.items()}
    calls["random fill alone (B x 128)"] = lambda: fill(3, hb)
    for f in calls.values():          # compile / load, warm up
        for _ in range(3):
            f()
    names = list(calls)
    times = {n: [] for n in names}
    for r in range(args.rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            f = calls[n]
            t0 = time.perf_counter()
            for _ in range(args.reps):
                f()
            times[n].append((time.perf_counter() - t0) / args.reps)
    base = np.median(times["step, dropout: none"])
    print(f"demo MLP 784-128-10 ReLU, Adam, float32, B={args.batch}; medians of "
          f"{args.rounds} interleaved blocks of {args.reps} calls")
    print(f"{'':34s} {'us/call':>9s} {'vs no dropout':>14s}")
    for n in names:
        m = np.median(times[n])
        rel = f"{100 * (m - base) / base:+.1f}%" if n.startswith("step") else \
            f"{100 * m / base:.1f}% of a step"
        print(f"{n:34s} {m * 1e6:9.1f} {rel:>14s}")


if __name__ == "__main__":
    main()
