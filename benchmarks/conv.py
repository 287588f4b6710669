"""conv2d forward + backward (value, d/dx, d/dw for a given output cotangent) at MNIST
sizes: N=64, 28x28, 3x3, padding 1, float32, 1 -> 32 and 32 -> 64 channels.

Compared, interleaved (one call of each in turn, medians of `--repeats`):
* graphc: one compiled Function (im2col per sample + BLAS, shared-runtime helpers);
* direct: the same three computations as direct loops in Numba (no BLAS) - the
  alternative lowering, measured to choose;
* numpy: im2col of the whole batch (sliding windows) and NumPy's BLAS (tensordot);
* torch: PyTorch's CPU convolution and autograd, when importable (never a dependency).

    python benchmarks/conv.py [--repeats 15]
"""

from __future__ import annotations

import argparse
import time

import numba
import numpy as np

import graphc as gc


def numpy_im2col(x, w, g):
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))  # n c h w i j
    cols = np.ascontiguousarray(win.transpose(0, 2, 3, 1, 4, 5)).reshape(n * h * wd, c * kh * kw)
    w2 = w.reshape(o, -1)
    y = (cols @ w2.T).reshape(n, h, wd, o).transpose(0, 3, 1, 2)
    g2 = np.ascontiguousarray(g.transpose(0, 2, 3, 1)).reshape(n * h * wd, o)
    dw = (g2.T @ cols).reshape(w.shape)
    dcols = (g2 @ w2).reshape(n, h, wd, c, kh, kw)
    dxp = np.zeros_like(xp)
    for i in range(kh):
        for j in range(kw):
            dxp[:, :, i:i + h, j:j + wd] += dcols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    return np.ascontiguousarray(y), dxp[:, :, 1:-1, 1:-1], dw


@numba.njit(cache=True, nogil=True)
def _direct(x, w, g):
    n_, c_, h, wd = x.shape
    o_, _, kh, kw = w.shape
    y = np.zeros((n_, o_, h, wd), dtype=x.dtype)
    dx = np.zeros_like(x)
    dw = np.zeros_like(w)
    for n in range(n_):
        for o in range(o_):
            for c in range(c_):
                for i in range(kh):
                    for j in range(kw):
                        wv = w[o, c, i, j]
                        acc = 0.0
                        for a in range(max(0, 1 - i), min(h, h + 1 - i)):
                            ia = a + i - 1
                            for b in range(max(0, 1 - j), min(wd, wd + 1 - j)):
                                ib = b + j - 1
                                y[n, o, a, b] += wv * x[n, c, ia, ib]
                                dx[n, c, ia, ib] += wv * g[n, o, a, b]
                                acc += g[n, o, a, b] * x[n, c, ia, ib]
                        dw[o, c, i, j] += acc
    return y, dx, dw


def torch_fn():
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)

    def run(x, w, g):
        tx = torch.from_numpy(x).requires_grad_()
        tw = torch.from_numpy(w).requires_grad_()
        y = torch.nn.functional.conv2d(tx, tw, padding=1)
        y.backward(torch.from_numpy(g))
        return y.detach().numpy(), tx.grad.numpy(), tw.grad.numpy()
    return run


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=15)
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    rows = []
    for c, o in ((1, 32), (32, 64)):
        x = rng.standard_normal((64, c, 28, 28)).astype(np.float32)
        w = rng.standard_normal((o, c, 3, 3)).astype(np.float32)
        g = rng.standard_normal((64, o, 28, 28)).astype(np.float32)
        X = gc.tensor("X", (None, c, 28, 28), "float32")
        W = gc.tensor("W", (o, c, 3, 3), "float32")
        G = gc.tensor("G", (None, o, 28, 28), "float32")
        y = gc.conv2d(X, W, padding=1)
        fn = gc.compile([X, W, G], [y, *gc.grad(gc.sum(y * G), [X, W])])
        runners = {"graphc": lambda: fn(x, w, g), "direct": lambda: _direct(x, w, g),
                   "numpy": lambda: numpy_im2col(x, w, g)}
        t = torch_fn()
        if t is not None:
            runners["torch"] = lambda: t(x, w, g)
        want = numpy_im2col(x, w, g)
        for name, run in runners.items():           # warm up, and check
            for got, ref in zip(run(), want):
                np.testing.assert_allclose(got, ref, rtol=2e-3, atol=2e-2 * np.abs(ref).max(),
                                           err_msg=name)
        times = {k: [] for k in runners}
        for _ in range(args.repeats):
            for name, run in runners.items():
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
        med = {k: 1e3 * float(np.median(v)) for k, v in times.items()}
        rows.append((f"{c} -> {o}", med))
    names = list(rows[0][1])
    print("conv2d forward + backward, N=64, 28x28, 3x3, padding 1, float32 "
          f"(ms, medians of {args.repeats}, interleaved)")
    print(f"{'layer':10s}" + "".join(f"{n:>10s}" for n in names) + f"{'graphc/numpy':>14s}"
          + (f"{'graphc/torch':>14s}" if "torch" in names else ""))
    for layer, med in rows:
        line = f"{layer:10s}" + "".join(f"{med[n]:10.2f}" for n in names)
        line += f"{med['graphc'] / med['numpy']:14.2f}"
        if "torch" in med:
            line += f"{med['graphc'] / med['torch']:14.2f}"
        print(line)
    if "torch" not in names:
        print("(PyTorch is not installed here: no torch column)")


if __name__ == "__main__":
    main()
