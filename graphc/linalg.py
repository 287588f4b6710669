"""gc.linalg: dense linear algebra on square matrices, with reverse and forward rules
written with graphc ops (so they differentiate again).

Every function is a primitive op of the table (``linalg_<name>``, not public under that
name: users call ``gc.linalg.<name>``).  Compiled code calls the shared-runtime helpers
below: a Cholesky factorisation, an LU factorisation with partial pivoting and
triangular substitutions written as Numba loops over BLAS-level slices, so that a matrix
that is not positive definite, or a singular system, raises ``numpy.linalg.LinAlgError``
naming the op on evaluate, the tape and compiled code alike; ``eigh`` calls Numba's
``np.linalg.eigh`` (LAPACK).

Derivative rules (Murray 2016, "Differentiation of the Cholesky decomposition"; Giles
2008 for the others): with X = solve(A, B), B̄ = solve(Aᵀ, X̄), Ā = -B̄ Xᵀ; for
L = cholesky(A), Ā = sym(L⁻ᵀ Φ(Lᵀ L̄) L⁻¹) (Φ: the lower triangle, diagonal halved);
for a triangular solve the same as solve with Ā masked to the triangle; inv: Ā = -Yᵀ Ȳ Yᵀ;
det: Ā = ḡ det A⁻ᵀ; logabsdet: Ā = ḡ A⁻ᵀ; eigh (distinct eigenvalues):
Ā = V (diag(w̄) + F ∘ (Vᵀ V̄)) Vᵀ, Fᵢⱼ = 1 / (wⱼ - wᵢ), symmetrised.
"""

from __future__ import annotations

import numpy as np

from . import api
from .lowering import Code
from .ops import Op, register
from .shapes import ShapeError, format_shape

# ---------------------------------------------------------------------------------
# Runtime helpers (compiled by the shared runtime; plain NumPy-on-Numba source)
# ---------------------------------------------------------------------------------

_HELPERS = '''
def _gcla_cholesky(a):
    n = a.shape[0]
    low = np.zeros((n, n), dtype=a.dtype)
    for j in range(n):
        d = a[j, j]
        for k in range(j):
            d -= low[j, k] * low[j, k]
        if not d > 0.0:
            raise np.linalg.LinAlgError("gc.linalg.cholesky: the matrix is not positive definite")
        r = np.sqrt(d)
        low[j, j] = r
        for i in range(j + 1, n):
            s = a[i, j]
            for k in range(j):
                s -= low[i, k] * low[j, k]
            low[i, j] = s / r
    return low


def _gcla_trsolve(l, b, lower, unit_check):
    """l x = b for triangular l, b of shape (n, m)."""
    n = l.shape[0]
    m = b.shape[1]
    x = np.empty((n, m), dtype=b.dtype)
    for step in range(n):
        i = step if lower else n - 1 - step
        d = l[i, i]
        if unit_check and d == 0.0:
            raise np.linalg.LinAlgError("gc.linalg.solve_triangular: the matrix is singular")
        for c in range(m):
            x[i, c] = b[i, c]
        if lower:
            for k in range(i):
                f = l[i, k]
                if f != 0.0:
                    for c in range(m):
                        x[i, c] -= f * x[k, c]
        else:
            for k in range(i + 1, n):
                f = l[i, k]
                if f != 0.0:
                    for c in range(m):
                        x[i, c] -= f * x[k, c]
        for c in range(m):
            x[i, c] /= d
    return x


def _gcla_lu(a):
    """Row-pivoted LU of a copy of a: (lu, perm, sign, singular)."""
    n = a.shape[0]
    lu = a.copy()
    perm = np.arange(n)
    sign = 1.0
    singular = False
    for j in range(n):
        p = j
        best = abs(lu[j, j])
        for i in range(j + 1, n):
            v = abs(lu[i, j])
            if v > best:
                best = v
                p = i
        if p != j:
            for c in range(n):
                t = lu[j, c]
                lu[j, c] = lu[p, c]
                lu[p, c] = t
            t2 = perm[j]
            perm[j] = perm[p]
            perm[p] = t2
            sign = -sign
        piv = lu[j, j]
        if piv == 0.0:
            singular = True
            continue
        for i in range(j + 1, n):
            f = lu[i, j] / piv
            lu[i, j] = f
            if f != 0.0:
                for c in range(j + 1, n):
                    lu[i, c] -= f * lu[j, c]
    return lu, perm, sign, singular


def _gcla_solve(a, b, what):
    lu, perm, sign, singular = _gcla_lu(np.ascontiguousarray(a))
    if singular:
        if what == 1:
            raise np.linalg.LinAlgError("gc.linalg.inv: the matrix is singular")
        raise np.linalg.LinAlgError("gc.linalg.solve: the matrix is singular")
    n = a.shape[0]
    m = b.shape[1]
    pb = np.empty((n, m), dtype=lu.dtype)
    for i in range(n):
        for c in range(m):
            pb[i, c] = b[perm[i], c]
    y = np.empty((n, m), dtype=lu.dtype)
    for i in range(n):
        for c in range(m):
            s = pb[i, c]
            for k in range(i):
                s -= lu[i, k] * y[k, c]
            y[i, c] = s
    x = np.empty((n, m), dtype=lu.dtype)
    for i in range(n - 1, -1, -1):
        for c in range(m):
            s = y[i, c]
            for k in range(i + 1, n):
                s -= lu[i, k] * x[k, c]
            x[i, c] = s / lu[i, i]
    return x


def _gcla_solve_any(a, b):
    if b.ndim == 1:
        return _gcla_solve(a, np.ascontiguousarray(b).reshape((b.shape[0], 1)), 0)[:, 0].copy()
    return _gcla_solve(a, np.ascontiguousarray(b), 0)


def _gcla_trsolve_any(l, b, lower):
    l = np.ascontiguousarray(l)
    if b.ndim == 1:
        return _gcla_trsolve(l, np.ascontiguousarray(b).reshape((b.shape[0], 1)), lower,
                             True)[:, 0].copy()
    return _gcla_trsolve(l, np.ascontiguousarray(b), lower, True)


def _gcla_inv(a):
    return _gcla_solve(a, np.eye(a.shape[0], dtype=a.dtype), 1)


def _gcla_slogdet(a):
    lu, perm, sign, singular = _gcla_lu(np.ascontiguousarray(a))
    if singular:
        return 0.0, -np.inf
    s = sign
    t = 0.0
    for i in range(a.shape[0]):
        d = lu[i, i]
        if d < 0:
            s = -s
        t += np.log(abs(d))
    return s, t


def _gcla_det(a):
    s, t = _gcla_slogdet(a)
    return np.full((), s * np.exp(t), dtype=a.dtype)


def _gcla_sign(a):
    s, t = _gcla_slogdet(a)
    return np.full((), s, dtype=a.dtype)


def _gcla_logabsdet(a):
    s, t = _gcla_slogdet(a)
    return np.full((), t, dtype=a.dtype)


def _gcla_eigh_w(a):
    w, v = np.linalg.eigh(np.ascontiguousarray(a))
    return w


def _gcla_eigh_v(a):
    w, v = np.linalg.eigh(np.ascontiguousarray(a))
    return v
'''

_RUNTIME = tuple("def " + part.strip() if not part.lstrip().startswith("def ") else part.strip()
                 for part in _HELPERS.split("\n\n\ndef "))

# ---------------------------------------------------------------------------------
# NumPy implementations (evaluate, the tape)
# ---------------------------------------------------------------------------------


def _as_float(a):
    a = np.asarray(a)
    return a if a.dtype.kind == "f" else a.astype(np.float64)


def _cholesky_impl(a):
    a = _as_float(a)
    try:
        return np.linalg.cholesky(a)
    except np.linalg.LinAlgError:
        raise np.linalg.LinAlgError("gc.linalg.cholesky: the matrix is not positive definite") from None


def _check_singular(what, a):
    a = _as_float(a)
    sign, _ = np.linalg.slogdet(a)
    if sign == 0 or not np.all(np.isfinite(a)):
        raise np.linalg.LinAlgError(f"gc.linalg.{what}: the matrix is singular")
    return a


def _solve_impl(a, b):
    a, b = _check_singular("solve", a), _as_float(b)
    try:
        return np.linalg.solve(a, b[:, None] if b.ndim == 1 else b)[..., 0] if b.ndim == 1 \
            else np.linalg.solve(a, b)
    except np.linalg.LinAlgError:
        raise np.linalg.LinAlgError("gc.linalg.solve: the matrix is singular") from None


def _solve_triangular_impl(l, b, lower):
    from scipy.linalg import solve_triangular
    l, b = _as_float(l), _as_float(b)
    if np.any(np.diagonal(l) == 0):
        raise np.linalg.LinAlgError("gc.linalg.solve_triangular: the matrix is singular")
    return solve_triangular(l, b, lower=lower, check_finite=False)


def _inv_impl(a):
    return np.linalg.inv(_check_singular("inv", a))


def _det_impl(a):
    return np.asarray(np.linalg.det(_as_float(a)))


def _sign_impl(a):
    return np.asarray(np.linalg.slogdet(_as_float(a))[0])


def _logabsdet_impl(a):
    return np.asarray(np.linalg.slogdet(_as_float(a))[1])


def _eigh_w_impl(a):
    return np.linalg.eigh(_as_float(a))[0]


def _eigh_v_impl(a):
    return np.linalg.eigh(_as_float(a))[1]


# ---------------------------------------------------------------------------------
# Derivative rules (F: the graph namespace or the tape's NumPy one)
# ---------------------------------------------------------------------------------

def _T(F, x):
    return F.transpose(x, axes=(1, 0))


def _col(F, x):
    return F.expand_dims(x, axis=(1,))


def _row(F, x):
    return F.expand_dims(x, axis=(0,))


def _outer(F, a, b):
    """a bᵀ for vectors, a @ bᵀ for matrices."""
    if len(a.shape) == 1:
        return _col(F, a) * _row(F, b)
    return a @ _T(F, b)


def _phi(n, dtype):
    """The mask of Φ: ones below the diagonal, one half on it."""
    return np.tril(np.ones((n, n), dtype=dtype), -1) + 0.5 * np.eye(n, dtype=dtype)


def _mask(F, x, m):
    return x * m


def _sym(F, x):
    return (x + _T(F, x)) * 0.5


def _trsolve(F, l, b, lower):
    return F.apply("linalg_solve_triangular", l, b, lower=lower)


def _cholesky_vjp(F, g, out, a):
    n = a.shape[0]
    p = _mask(F, _T(F, out) @ g, _phi(n, np.dtype(out.dtype)))
    # S = L^-T P L^-1: two triangular solves
    s = _trsolve(F, _T(F, out), p, False)                # L^-T P
    s = _T(F, _trsolve(F, _T(F, out), _T(F, s), False))  # (L^-T (L^-T P)^T)^T = L^-T P L^-1
    return (_sym(F, s),)


def _cholesky_jvp(F, t, out, a):
    n = a.shape[0]
    x = _trsolve(F, out, _sym(F, t[0]), True)            # L^-1 Ȧ
    x = _T(F, _trsolve(F, out, _T(F, x), True))          # L^-1 Ȧ L^-T
    return out @ _mask(F, x, _phi(n, np.dtype(out.dtype)))


def _solve_vjp(F, g, out, a, b):
    gb = F.apply("linalg_solve", _T(F, a), g)
    return (-_outer(F, gb, out), gb)


def _solve_jvp(F, t, out, a, b):
    da, db = t
    rhs = db
    if da is not None:
        rhs = da @ out if rhs is None else rhs - da @ out
        if rhs is not None and db is None:
            rhs = -(da @ out)
    return F.apply("linalg_solve", a, rhs)


def _triangle(l, out, lower):
    n = l.shape[0]
    ones = np.ones((n, n), dtype=np.dtype(out.dtype))
    return np.tril(ones) if lower else np.triu(ones)


def _solve_triangular_vjp(F, g, out, l, b, lower):
    gb = _trsolve(F, _T(F, l), g, not lower)
    return (-_mask(F, _outer(F, gb, out), _triangle(l, out, lower)), gb)


def _solve_triangular_jvp(F, t, out, l, b, lower):
    dl, db = t
    if dl is not None:
        dl = _mask(F, dl, _triangle(l, out, lower))
    if dl is None:
        rhs = db
    elif db is None:
        rhs = -(dl @ out)
    else:
        rhs = db - dl @ out
    return _trsolve(F, l, rhs, lower)


def _inv_vjp(F, g, out, a):
    yt = _T(F, out)
    return (-(yt @ g @ yt),)


def _inv_jvp(F, t, out, a):
    return -(out @ t[0] @ out)


def _inv_t(F, a):
    return _T(F, F.apply("linalg_inv", a))


def _det_vjp(F, g, out, a):
    return (_inv_t(F, a) * (g * out),)


def _trace_prod(F, a_inv_t, da):
    return F.sum(a_inv_t * da, axis=(0, 1))


def _det_jvp(F, t, out, a):
    return out * _trace_prod(F, _inv_t(F, a), t[0])


def _logabsdet_vjp(F, g, out, a):
    return (_inv_t(F, a) * g,)


def _logabsdet_jvp(F, t, out, a):
    return _trace_prod(F, _inv_t(F, a), t[0])


def _eigh_f(F, w):
    """Fᵢⱼ = 1 / (wⱼ - wᵢ) off the diagonal, 0 on it."""
    n = w.shape[0]
    off = 1.0 - np.eye(n)
    diff = _row(F, w) - _col(F, w) + np.eye(n)
    return F.div(1.0, diff) * off


def _eigh_w_vjp(F, g, out, a):
    v = F.apply("linalg_eigh_v", a)
    return (_sym(F, (v * _row(F, g)) @ _T(F, v)),)


def _eigh_w_jvp(F, t, out, a):
    v = F.apply("linalg_eigh_v", a)
    da = _sym(F, t[0])
    return F.sum(v * (da @ v), axis=(0,))


def _eigh_v_vjp(F, g, out, a):
    w = F.apply("linalg_eigh_w", a)
    inner = _eigh_f(F, w) * (_T(F, out) @ g)
    return (_sym(F, out @ inner @ _T(F, out)),)


def _eigh_v_jvp(F, t, out, a):
    w = F.apply("linalg_eigh_w", a)
    da = _sym(F, t[0])
    return out @ (_eigh_f(F, w) * (_T(F, out) @ da @ out))


# ---------------------------------------------------------------------------------
# The op table entries
# ---------------------------------------------------------------------------------

def _float(dtypes, **_):
    dt = np.result_type(*dtypes)
    return dt if dt.kind == "f" else np.dtype(np.float64)


def _c(x):
    return f"np.ascontiguousarray({x})"


def _lines(call):
    return lambda t, args, node, shape: [f"{t} = {call(args, node)}"]


def _square_shape(shapes, meet, **_):
    return tuple(shapes[0])


def _rhs_shape(shapes, meet, **_):
    return tuple(shapes[1])


def _scalar_shape(shapes, meet, **_):
    return ()


def _w_shape(shapes, meet, **_):
    return (shapes[0][0],)


def _entry(name, arity, impl, shape, call, vjp, jvp, doc, params=()):
    register(Op(name=f"linalg_{name}", kind="linalg", arity=arity, impl=impl, shape=shape,
                dtype=_float, params=params, public=False,
                lowering=Code(_lines(call), helpers=_RUNTIME), vjp=vjp, jvp=jvp, doc=doc))


_entry("cholesky", 1, _cholesky_impl, _square_shape,
       lambda a, n: f"_gcla_cholesky({_c(a[0])})", _cholesky_vjp, _cholesky_jvp,
       "the lower Cholesky factor L of an SPD matrix (A = L Lᵀ; reads A's lower triangle)")
_entry("solve", 2, _solve_impl, _rhs_shape,
       lambda a, n: f"_gcla_solve_any({_c(a[0])}, {a[1]})", _solve_vjp, _solve_jvp,
       "X with A X = B (B a vector or a matrix)")
_entry("solve_triangular", 2, _solve_triangular_impl, _rhs_shape,
       lambda a, n: f"_gcla_trsolve_any({a[0]}, {a[1]}, {bool(n.kwargs['lower'])})",
       _solve_triangular_vjp, _solve_triangular_jvp,
       "X with L X = B for triangular L (reads only its lower or upper triangle)",
       params=("lower",))
_entry("inv", 1, _inv_impl, _square_shape, lambda a, n: f"_gcla_inv({_c(a[0])})",
       _inv_vjp, _inv_jvp, "the inverse matrix")
_entry("det", 1, _det_impl, _scalar_shape, lambda a, n: f"_gcla_det({_c(a[0])})",
       _det_vjp, _det_jvp, "the determinant")
register(Op(name="linalg_slogdet_sign", kind="linalg", arity=1, impl=_sign_impl,
            shape=_scalar_shape, dtype=_float, public=False,
            lowering=Code(_lines(lambda a, n: f"_gcla_sign({_c(a[0])})"), helpers=_RUNTIME),
            doc="the sign of the determinant (no gradient)"))
_entry("logabsdet", 1, _logabsdet_impl, _scalar_shape,
       lambda a, n: f"_gcla_logabsdet({_c(a[0])})", _logabsdet_vjp, _logabsdet_jvp,
       "log |det A|")
_entry("eigh_w", 1, _eigh_w_impl, _w_shape, lambda a, n: f"_gcla_eigh_w({_c(a[0])})",
       _eigh_w_vjp, _eigh_w_jvp, "eigenvalues of a symmetric matrix, ascending")
_entry("eigh_v", 1, _eigh_v_impl, _square_shape, lambda a, n: f"_gcla_eigh_v({_c(a[0])})",
       _eigh_v_vjp, _eigh_v_jvp, "eigenvectors (columns) of a symmetric matrix")


# ---------------------------------------------------------------------------------
# The functions users call
# ---------------------------------------------------------------------------------

def _square(what, a):
    s = tuple(api.shape_of(a))
    if len(s) != 2 or s[0] is None or s[0] != s[1]:
        raise ShapeError(f"gc.linalg.{what}: expected a square matrix with static sizes, got "
                         f"shape {format_shape(s)}")
    return s[0]


def _rhs(what, a, b):
    n = _square(what, a)
    sb = tuple(api.shape_of(b))
    if len(sb) not in (1, 2) or sb[0] != n:
        raise ShapeError(f"gc.linalg.{what}: B must be a vector or a matrix with {n} rows "
                         f"for A {format_shape(api.shape_of(a))}, got B {format_shape(sb)}")


def cholesky(a):
    """The lower Cholesky factor L of a symmetric positive definite A (A = L Lᵀ).  Not
    positive definite: ``numpy.linalg.LinAlgError`` on every backend."""
    _square("cholesky", a)
    return api.apply("linalg_cholesky", a)


def solve(a, b):
    """X with A X = B; B a vector or a matrix.  Singular A: ``LinAlgError``."""
    _rhs("solve", a, b)
    return api.apply("linalg_solve", a, b)


def solve_triangular(a, b, lower=True):
    """X with A X = B for triangular A (only its lower or upper triangle is read)."""
    _rhs("solve_triangular", a, b)
    return api.apply("linalg_solve_triangular", a, b, lower=bool(lower))


def inv(a):
    _square("inv", a)
    return api.apply("linalg_inv", a)


def det(a):
    _square("det", a)
    return api.apply("linalg_det", a)


def slogdet(a):
    """(sign, log |det A|); the sign has no gradient."""
    _square("slogdet", a)
    return api.apply("linalg_slogdet_sign", a), api.apply("linalg_logabsdet", a)


def eigh(a):
    """(w, V) of a symmetric A (ascending eigenvalues, eigenvectors as columns); reads the
    lower triangle; the gradient assumes distinct eigenvalues."""
    _square("eigh", a)
    return api.apply("linalg_eigh_w", a), api.apply("linalg_eigh_v", a)


__all__ = ["cholesky", "det", "eigh", "inv", "slogdet", "solve", "solve_triangular"]
