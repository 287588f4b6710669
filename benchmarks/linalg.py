"""GP negative log marginal likelihood + gradient (w.r.t. the log length-scale and the log
noise of an RBF kernel) on N points: compiled graphc against hand-written SciPy
(cho_factor/cho_solve, the standard closed-form gradient), interleaved repetitions,
medians and the ratio; plus graphc's compile time.

    python benchmarks/linalg.py [--n 500] [--reps 15]
"""

import argparse
import time

import numpy as np
import scipy.linalg as sla

import graphc as gc


def graphc_gp(d2, n):
    ell, noise, y = gc.scalar("log_ell"), gc.scalar("log_noise"), gc.vector("y", n)
    K = gc.exp(-0.5 * d2 * gc.exp(-2.0 * ell)) + gc.exp(2.0 * noise) * np.eye(n)
    L = gc.linalg.cholesky(K)
    alpha = gc.linalg.solve_triangular(gc.transpose(L), gc.linalg.solve_triangular(L, y),
                                       lower=False)
    cost = (0.5 * gc.sum(y * alpha) + gc.sum(gc.log(gc.sum(L * np.eye(n), axis=1)))
            + 0.5 * n * np.log(2 * np.pi))
    t = time.perf_counter()
    f = gc.compile([ell, noise, y], [cost, *gc.grad(cost, [ell, noise])])
    return f, time.perf_counter() - t


def scipy_gp(log_ell, log_noise, y, d2):
    n = len(y)
    E = np.exp(-0.5 * d2 * np.exp(-2.0 * log_ell))
    K = E + np.exp(2.0 * log_noise) * np.eye(n)
    c = sla.cho_factor(K, lower=True, check_finite=False)
    alpha = sla.cho_solve(c, y, check_finite=False)
    Kinv = sla.cho_solve(c, np.eye(n), check_finite=False)
    W = np.outer(alpha, alpha) - Kinv                 # d nlml / dK = -0.5 W
    dK_ell = E * d2 * np.exp(-2.0 * log_ell)
    dK_noise = 2.0 * np.exp(2.0 * log_noise) * np.eye(n)
    nlml = 0.5 * y @ alpha + np.sum(np.log(np.diag(c[0]))) + 0.5 * n * np.log(2 * np.pi)
    return nlml, -0.5 * np.sum(W * dK_ell), -0.5 * np.sum(W * dK_noise)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--reps", type=int, default=15)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    x = np.sort(rng.uniform(0, 10, a.n))
    y = np.sin(x) + 0.1 * rng.normal(size=a.n)
    d2 = (x[:, None] - x[None, :]) ** 2
    p = (np.log(0.8), np.log(0.3))
    f, compile_s = graphc_gp(d2, a.n)
    t = time.perf_counter()
    got = f(*p, y)
    first_call = time.perf_counter() - t
    want = scipy_gp(*p, y, d2)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    times = {"graphc": [], "scipy": []}
    for _ in range(a.reps):
        t = time.perf_counter(); f(*p, y); times["graphc"].append(time.perf_counter() - t)
        t = time.perf_counter(); scipy_gp(*p, y, d2); times["scipy"].append(time.perf_counter() - t)
    g, s = np.median(times["graphc"]), np.median(times["scipy"])
    print(f"GP NLML + gradient (log length-scale, log noise), RBF, N = {a.n}, {a.reps} interleaved reps")
    print(f"{'':24s}{'median ms':>12s}")
    print(f"{'graphc (compiled)':24s}{g * 1e3:12.2f}")
    print(f"{'SciPy (cho_factor)':24s}{s * 1e3:12.2f}")
    print(f"{'ratio graphc / SciPy':24s}{g / s:12.2f}")
    print(f"compile (graphc.compile): {compile_s:.2f} s; first call (Numba compile): {first_call:.2f} s")


if __name__ == "__main__":
    main()
