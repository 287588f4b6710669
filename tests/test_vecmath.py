"""The vectorisable elementary functions of graphc's runtime (graphc/codegen/vecmath.py):
accuracy in ulp against long-double references (mpmath for a sample, which also checks
the long-double references), on 10**5 points per decade of each function's domain,
IEEE special values, and machine code that really is vectorised.

The long-double library functions cost about 80 ns a call, so they are used only
where a function is not yet saturated; in the decades below and above, the reference
is a series in long double (exp(x) = 1 + x for |x| < 1e-20) or the exact limit
(exp(x) = inf beyond 800), and log's reference over its 2,000 binades reuses one set
of long-double logarithms of mantissas: log(m * 2**e) = log(m) + e*log(2)."""

import importlib.util
import re

import mpmath
import numpy as np
import pytest

from graphc.codegen import vecmath

LD = np.longdouble
PER_DECADE = 100_000
MAX_ULP = 4.0
DECO = "@numba.njit(cache=False, nogil=True, error_model='numpy')"
NAMES = vecmath.FUNCTIONS


def _module_source():
    src = ["import math", "import numba", "import numpy as np", ""]
    src += list(vecmath.definitions(DECO).values())
    src += [DECO, "def apply(which, x, out):", "    for i in range(x.shape[0]):"]
    for j, name in enumerate(NAMES):
        src += [f"        {'if' if j == 0 else 'elif'} which == {j}:",
                f"            out[i] = _{name}(x[i])"]
    for name in NAMES:                  # one plain loop per function: the vector check
        src += ["", DECO, f"def loop_{name}(x, out):", "    for i in range(x.shape[0]):",
                f"        out[i] = _{name}(x[i])"]
    return "\n".join(src) + "\n"


@pytest.fixture(scope="module")
def vm(tmp_path_factory):
    path = tmp_path_factory.mktemp("vecmath") / "vm_under_test.py"
    path.write_text(_module_source())
    spec = importlib.util.spec_from_file_location("vm_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(vm, name, x):
    out = np.empty_like(x)
    vm.apply(NAMES.index(name), x, out)
    return out


# ---- references ----------------------------------------------------------------------

def _sigmoid_ld(x):
    return 1 / (1 + np.exp(-x))


def _softplus_ld(x):
    return np.where(x > 0, x + np.log1p(np.exp(-np.abs(x))), np.log1p(np.exp(x)))


LIBM = {"exp": np.exp, "log": np.log, "log1p": np.log1p, "expm1": np.expm1,
        "tanh": np.tanh, "sigmoid": _sigmoid_ld, "softplus": _softplus_ld, "sin": np.sin,
        "cos": np.cos}

#: Below TINY and beyond BIG[name] the correctly rounded result is exactly LIMIT's.
TINY = {np.float64: 1e-20, np.float32: 1e-10}
BIG = {np.float64: {"exp": 800, "expm1": 800, "sigmoid": 800, "softplus": 800, "tanh": 25,
                    "log1p": np.inf, "sin": np.inf, "cos": np.inf},
       np.float32: {"exp": 110, "expm1": 110, "sigmoid": 110, "softplus": 110, "tanh": 12,
                    "log1p": np.inf, "sin": np.inf, "cos": np.inf}}
LIMIT = {   # name: (tiny x, large positive x, large negative x)
    "exp": (lambda x: 1.0, np.inf, 0.0), "expm1": (lambda x: x, np.inf, -1.0),
    "log1p": (lambda x: x, None, None), "tanh": (lambda x: x, 1.0, -1.0),
    "sigmoid": (lambda x: 0.5, 1.0, 0.0),
    "softplus": (lambda x: np.log(2.0), lambda x: x, 0.0),
    "sin": (lambda x: x, None, None), "cos": (lambda x: 1.0, None, None)}


def reference(name, x, dtype):
    """The long-double reference for `x` (an array of `dtype`)."""
    return LIBM[name](x.astype(LD))


def limit(name, x, dtype):
    """The exact result where `name` is saturated, else NaN (as `dtype`)."""
    tiny, pos, neg = LIMIT[name]
    a = np.abs(x)
    out = np.full(x.shape, np.nan, dtype=dtype)
    small, big = a < TINY[dtype], a > BIG[dtype][name]
    out[small] = np.asarray(tiny(x[small]), dtype=dtype)
    for mask, value in ((big & (x > 0), pos), (big & (x < 0), neg)):
        out[mask] = np.asarray(value(x[mask]) if callable(value) else value, dtype=dtype)
    return out


def ulp_error(y, ref, dtype):
    """|y - ref| in units of the last place of ref rounded to `dtype` (0 where y is
    ref's rounding exactly, including inf and the sign of zero; inf where they differ
    in kind: NaN against a number, a wrong sign, a finite against an infinite)."""
    with np.errstate(all="ignore"):
        r = ref.astype(dtype)
        err = np.abs(y.astype(ref.dtype) - ref) / np.spacing(np.abs(r)).astype(ref.dtype)
    same = (y == r) & (np.signbit(y) == np.signbit(r)) | (np.isnan(y) & np.isnan(r))
    err[same] = 0
    err[~same & (np.isnan(y) | np.isnan(r) | np.isinf(y) | np.isinf(r))] = np.inf
    return err


def decade_errors(vm, name, dtype, lo, hi, sign, rng, ref=None):
    """The worst ulp error (and where) over PER_DECADE log-uniform points in each decade
    10**d <= |x| < 10**(d+1), lo <= d < hi: against the exact limit where the function is
    saturated, else against the long-double reference (or `ref`)."""
    mantissas = 10.0 ** rng.uniform(0, 1, PER_DECADE)
    worst_err, worst_x = 0.0, None
    for d in range(lo, hi):
        scaled = mantissas * float(f"1e{d}") if d > -300 else mantissas * float(f"1e{d + 20}") * 1e-20
        with np.errstate(over="ignore"):
            x = (sign * scaled).astype(dtype)
        x = x[np.isfinite(x)]
        y = run(vm, name, x)
        exact = limit(name, x, dtype) if ref is None else np.full_like(x, np.nan)
        known = ~np.isnan(exact)
        err = np.zeros(x.shape)
        wrong = known & (y != exact)             # saturated: most results are exact
        err[wrong] = ulp_error(y[wrong], exact[wrong].astype(np.float64), dtype)
        if not known.all():
            r = (ref or (lambda v: reference(name, v, dtype)))(x[~known])
            err[~known] = ulp_error(y[~known], r, dtype)
        i = int(np.argmax(err))
        if err[i] > worst_err:
            worst_err, worst_x = float(err[i]), x[i]
    return worst_err, worst_x


DOMAIN = {np.float64: (-323, 308), np.float32: (-45, 38)}   # decades of |x|


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", ["exp", "expm1", "tanh", "sigmoid", "softplus"])
def test_accuracy_over_every_decade(vm, name, dtype):
    rng = np.random.default_rng(NAMES.index(name))
    for sign in (1, -1):
        err, at = decade_errors(vm, name, dtype, *DOMAIN[dtype], sign, rng)
        assert err <= MAX_ULP, f"{name}({at!r}) is {err:.2f} ulp off"


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_log1p_accuracy(vm, dtype):
    rng = np.random.default_rng(1)
    lo, hi = DOMAIN[dtype]
    top = 20 if dtype == np.float64 else 10
    checks = [decade_errors(vm, "log1p", dtype, lo, top, 1, rng),
              decade_errors(vm, "log1p", dtype, lo, 0, -1, rng),
              # huge x: log1p(x) = log(x) + 1/x to long-double precision
              decade_errors(vm, "log1p", dtype, top, hi, 1, rng,
                            ref=lambda x: _log_by_binade(x) + 1 / x.astype(LD))]
    # the approach to the pole: x = -1 + 10**d
    near_pole = np.concatenate([-1 + 10.0 ** rng.uniform(d, d + 1, PER_DECADE) for d in
                                range(int(np.log10(np.finfo(dtype).eps)), 0)]).astype(dtype)
    err = ulp_error(run(vm, "log1p", near_pole), reference("log1p", near_pole, dtype), dtype)
    checks.append((float(err.max()), near_pole[np.argmax(err)]))
    for err, at in checks:
        assert err <= MAX_ULP, f"log1p({at!r}) is {err:.2f} ulp off"


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", ["sin", "cos"])
def test_sin_cos_accuracy_over_every_decade(vm, name, dtype):
    """Every decade of |x| up to the largest float (the Payne-Hanek reduction), against
    long double (float32: against float64 libm, accurate to 2**-29 of a float32 ulp);
    sin odd and cos even bit for bit; and the arguments closest to multiples of pi/2
    (float64's worst case for the reduction: 6381956970095103 * 2**797) against mpmath."""
    rng = np.random.default_rng(NAMES.index(name))
    ref = None if dtype == np.float64 else \
        (lambda v: LIBM[name](v.astype(np.float64)).astype(LD))
    err, at = decade_errors(vm, name, dtype, *DOMAIN[dtype], 1, rng, ref=ref)
    assert err <= MAX_ULP, f"{name}({at!r}) is {err:.2f} ulp off"
    info = np.finfo(dtype)
    x = (10.0 ** rng.uniform(np.log10(float(info.smallest_subnormal)), np.log10(float(info.max)),
                             PER_DECADE)).astype(dtype)
    y, y_neg = run(vm, name, x), run(vm, name, -x)
    np.testing.assert_array_equal(y_neg, -y if name == "sin" else y)
    if name == "sin":
        assert (np.signbit(y_neg) != np.signbit(y)).all()
    hard = [6381956970095103 * 2.0 ** 797, 5060771152000257 * 2.0 ** 914, 355.0, 103993.0,
            1.5707963267948966, 3.141592653589793, 1e22, 2.0 ** 1023 * 1.9999]
    hard = np.array([h for h in hard if h < float(info.max)], dtype=dtype)
    f = {"sin": mpmath.sin, "cos": mpmath.cos}[name]
    with mpmath.workdps(400):
        exact = np.array([LD(str(f(mpmath.mpf(float(v))))) for v in hard])
    assert ulp_error(run(vm, name, hard), exact, dtype).max() <= MAX_ULP


def _log_by_binade(x):
    m, e = np.frexp(x.astype(np.float64))
    return np.log(m.astype(LD)) + e.astype(LD) * np.log(LD(2))


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_log_accuracy_over_every_binade(vm, dtype):
    """Every binade of the normal range with the same 30,000 mantissas (10**5 points a
    decade), the subnormals, and x = 1 +- 10**d, where log cancels."""
    info = np.finfo(dtype)
    rng = np.random.default_rng(2)
    mant = np.sort(rng.uniform(1, 2, 30_000)).astype(dtype)
    log_mant = np.log(mant.astype(LD))
    ln2 = np.log(LD(2))
    worst_err = 0.0
    for e in range(info.minexp, info.maxexp):
        x = mant * (dtype(2.0) ** (e - 1) * 2)
        # near x = 1 (e = -1, m near 2) log(m) - log(2) would cancel in the reference
        ref = np.log(x.astype(LD)) if e in (-1, 0) else log_mant + e * ln2
        err = ulp_error(run(vm, "log", x), ref, dtype)
        worst_err = max(worst_err, float(err.max()))
    assert worst_err <= MAX_ULP
    sub = np.concatenate([rng.uniform(0, info.smallest_normal, PER_DECADE).astype(dtype),
                          (2.0 ** rng.uniform(np.log2(float(info.smallest_subnormal)), np.log2(
                              float(info.smallest_normal)), PER_DECADE)).astype(dtype)])
    sub = sub[sub > 0]
    assert ulp_error(run(vm, "log", sub), np.log(sub.astype(LD)), dtype).max() <= MAX_ULP
    near_one = np.concatenate([1 + s * 10.0 ** rng.uniform(d, d + 1, PER_DECADE)
                               for d in range(int(np.log10(info.eps)), 0)
                               for s in (1, -1)]).astype(dtype)
    assert ulp_error(run(vm, "log", near_one), np.log(near_one.astype(LD)), dtype).max() <= MAX_ULP


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_against_mpmath(vm, dtype):
    """A sample against 50-digit mpmath: the functions and the long-double references."""
    rng = np.random.default_rng(3)
    mpf = {"exp": mpmath.exp, "log": mpmath.log, "log1p": mpmath.log1p, "expm1": mpmath.expm1,
           "tanh": mpmath.tanh, "sigmoid": lambda v: 1 / (1 + mpmath.exp(-v)),
           "softplus": lambda v: mpmath.log1p(mpmath.exp(v)), "sin": mpmath.sin,
           "cos": mpmath.cos}
    lo = {"log": 0, "log1p": -1}
    top = 700 if dtype == np.float64 else 85
    with mpmath.workdps(50):
        for name in NAMES:
            x = np.concatenate([rng.uniform(lo.get(name, -top), top, 300),
                                rng.uniform(lo.get(name, -3), 3, 300)]).astype(dtype)
            x = x[x > lo.get(name, -np.inf)]
            exact = np.array([mpf[name](mpmath.mpf(float(v))) for v in x], dtype=object)
            ref = np.array([LD(str(v)) if v != 0 else LD(0) for v in exact])
            assert ulp_error(run(vm, name, x), ref, dtype).max() <= MAX_ULP, name
            # the long-double reference, rounded, is mpmath's correctly rounded result
            assert ulp_error(reference(name, x, dtype).astype(dtype), ref, dtype).max() <= 0.51, \
                name


SPECIAL = {   # name: [(x, exact result), ...] for both dtypes (float32: rounded)
    "exp": [(0.0, 1.0), (-0.0, 1.0), (np.inf, np.inf), (-np.inf, 0.0), (1e308, np.inf),
            (-1e308, 0.0)],
    "log": [(1.0, 0.0), (0.0, -np.inf), (-0.0, -np.inf), (-1.0, np.nan), (np.inf, np.inf),
            (-np.inf, np.nan)],
    "log1p": [(0.0, 0.0), (-0.0, -0.0), (-1.0, -np.inf), (-2.0, np.nan), (np.inf, np.inf),
              (-np.inf, np.nan)],
    "expm1": [(0.0, 0.0), (-0.0, -0.0), (np.inf, np.inf), (-np.inf, -1.0), (1e308, np.inf),
              (-1e308, -1.0)],
    "tanh": [(0.0, 0.0), (-0.0, -0.0), (np.inf, 1.0), (-np.inf, -1.0), (1e308, 1.0),
             (-1e308, -1.0)],
    "sigmoid": [(0.0, 0.5), (-0.0, 0.5), (np.inf, 1.0), (-np.inf, 0.0), (1e308, 1.0),
                (-1e308, 0.0)],
    "softplus": [(np.inf, np.inf), (-np.inf, 0.0), (1e308, 1e308), (-1e308, 0.0),
                 (3e38, 3e38), (-3e38, 0.0)],
    "sin": [(0.0, 0.0), (-0.0, -0.0), (np.inf, np.nan), (-np.inf, np.nan), (5e-324, 5e-324),
            (1e308, 0.4533964905016491), (-1e308, -0.4533964905016491)],
    "cos": [(0.0, 1.0), (-0.0, 1.0), (np.inf, np.nan), (-np.inf, np.nan), (5e-324, 1.0),
            (1e308, -0.8913089376870335), (-1e308, -0.8913089376870335)],
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", NAMES)
def test_special_values(vm, name, dtype):
    cases = [(x, y) for x, y in SPECIAL[name] if dtype == np.float64 or abs(x) < 3.5e38
             or np.isinf(x)] + [(np.nan, np.nan)]
    x = np.array([c[0] for c in cases], dtype=dtype)
    with np.errstate(over="ignore"):
        want = np.array([c[1] for c in cases], dtype=dtype)
    got = run(vm, name, x)
    assert got.dtype == dtype
    for xi, g, w in zip(x, got, want):
        assert (np.isnan(g) and np.isnan(w)) or (g == w and np.signbit(g) == np.signbit(w)), \
            f"{name}({xi!r}) = {g!r}, expected {w!r}"


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_subnormal_results_are_not_flushed(vm, dtype):
    info = np.finfo(dtype)
    lo = float(np.log(LD(info.smallest_subnormal)))
    x = np.linspace(lo + 0.5, float(np.log(LD(info.smallest_normal))), 10_000).astype(dtype)
    for name in ("exp", "sigmoid", "softplus"):
        y = run(vm, name, x)
        assert (y > 0).all() and (y < info.smallest_normal * 1.01).any(), name
        assert ulp_error(y, reference(name, x, dtype), dtype).max() <= MAX_ULP, name


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_loops_are_vectorised(vm, dtype):
    """The LLVM IR of a plain loop over each function works on whole vectors (at least
    256 bits wide), and its machine code calls no libm function per element."""
    lanes = {"float64": ("double", 4), "float32": ("float", 8)}[dtype]
    x = np.linspace(0.1, 5, 64).astype(dtype)
    for name in NAMES:
        loop = getattr(vm, f"loop_{name}")
        loop(x, np.empty_like(x))
        sig = [s for s in loop.signatures if str(s[0].dtype) == dtype][0]
        ir = loop.inspect_llvm(sig)
        widths = [int(n) for n in re.findall(rf"<(\d+) x {lanes[0]}>", ir)]
        assert widths and max(widths) >= lanes[1], name
        asm = loop.inspect_asm(sig)
        assert re.search(r"%(zmm|ymm)\d+", asm), name
        assert not re.search(r"call\w*\s+\S*(exp|log|tanh|sin|cos)", asm), name


def test_float32_computes_in_float32(vm):
    """No float64 arithmetic in the float32 versions' IR (a float64 constant would
    promote every element); sin and cos are the exception, computed in float64 and
    rounded (as glibc's sinf)."""
    x = np.linspace(-5, 5, 64).astype(np.float32)
    for name in NAMES:
        if name in ("sin", "cos"):
            continue
        loop = getattr(vm, f"loop_{name}")
        loop(x, np.empty_like(x))
        sig = [s for s in loop.signatures if str(s[0].dtype) == "float32"][0]
        ir = loop.inspect_llvm(sig)
        assert not re.search(r"\bf(add|mul|sub|div) (<\d+ x )?double", ir), name
