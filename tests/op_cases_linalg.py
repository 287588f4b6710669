"""Op-table cases of gc.linalg (merged into tests/test_op_table.py).  SPD and symmetric
matrices are built inside `build` from a general input, so finite differences keep
them SPD (symmetric); triangular factors come from a Cholesky factor, so both
triangles of the general input matter only where the op reads them."""

import numpy as np

import graphc as gc

_R = np.random.default_rng(14)
_M = _R.normal(size=(3, 3))
_G = _R.normal(size=(3, 3)) + 3.0 * np.eye(3)        # general, well conditioned
_b = _R.normal(size=3)
_B = _R.normal(size=(3, 2))


def _spd(m):
    return m @ gc.transpose(m) + 3.0 * np.eye(3)


def _spd_np(m):
    return m @ m.T + 3.0 * np.eye(3)


def _tri(m):
    """A lower-triangular, well-conditioned matrix from a general one."""
    return gc.linalg.cholesky(_spd(m))


def _signed(v):
    """Eigenvectors with their first row made positive (eigh's sign is arbitrary)."""
    return v * gc.stop_gradient(gc.sign(v[:1, :]))


def _signed_np(v):
    return v * np.sign(v[:1, :])


CASES = {
    "linalg_cholesky (SPD from M M^T + 3 I)": (
        lambda m: gc.linalg.cholesky(_spd(m)), [_M], lambda m: np.linalg.cholesky(_spd_np(m))),
    "linalg_solve (general A, vector b)": (
        lambda a, b: gc.linalg.solve(a, b), [_G, _b], lambda a, b: np.linalg.solve(a, b)),
    "linalg_solve (general A, matrix B)": (
        lambda a, b: gc.linalg.solve(a, b), [_G, _B], lambda a, b: np.linalg.solve(a, b)),
    "linalg_solve_triangular (lower, matrix B)": (
        lambda m, b: gc.linalg.solve_triangular(_tri(m), b, lower=True), [_M, _B],
        lambda m, b: np.linalg.solve(np.linalg.cholesky(_spd_np(m)), b)),
    "linalg_solve_triangular (upper, vector b)": (
        lambda m, b: gc.linalg.solve_triangular(gc.transpose(_tri(m)), b, lower=False),
        [_M, _b], lambda m, b: np.linalg.solve(np.linalg.cholesky(_spd_np(m)).T, b)),
    "linalg_solve_triangular (lower, reads only the lower triangle)": (
        lambda a, b: gc.linalg.solve_triangular(a, b, lower=True), [_G, _b],
        lambda a, b: np.linalg.solve(np.tril(a), b)),
    "linalg_inv (general)": (lambda a: gc.linalg.inv(a), [_G], np.linalg.inv),
    "linalg_det (general)": (lambda a: gc.linalg.det(a), [_G], np.linalg.det),
    "linalg_slogdet (sign + log|det|, negative det)": (
        lambda a: gc.linalg.slogdet(a)[0] * 2.0 + gc.linalg.slogdet(a)[1], [-_G],
        lambda a: np.linalg.slogdet(a)[0] * 2.0 + np.linalg.slogdet(a)[1]),
    "linalg_eigh (eigenvalues of M + M^T)": (
        lambda m: gc.linalg.eigh(m + gc.transpose(m))[0], [_M],
        lambda m: np.linalg.eigh(m + m.T)[0]),
    "linalg_eigh (eigenvectors of M + M^T, sign-fixed)": (
        lambda m: _signed(gc.linalg.eigh(m + gc.transpose(m))[1]), [_M],
        lambda m: _signed_np(np.linalg.eigh(m + m.T)[1])),
}
