"""Vectorisable elementary functions for fused loops, as source text for the shared
runtime.

Numba lowers ``math.exp`` to ``llvm.exp``; LLVM vectorises the loop around it, but the
llvmlite wheels on PyPI have no vector math library (no SVML), so each ``llvm.exp.v8f64``
becomes eight scalar libm calls and the loop runs at libm speed.  The functions here
are written so that LLVM can vectorise them itself: range reduction and polynomials in
plain arithmetic, every special case a select instead of a branch, and the two things
Numba cannot spell - reinterpreting a float's bits as an integer and back (to split off
or build a power of two) and a fused multiply-add - as ``numba.extending.intrinsic``\\ s
that lower to single LLVM instructions.

Each function exists in a float64 and a float32 version, generated from one template
(the float32 one computes in float32: its constants are ``np.float32``), and a
dispatcher ``_exp`` etc. picks the version by the argument's Numba type (an
``overload``), so generated code calls one name whatever the loop's dtype.

Accuracy (``tests/test_vecmath.py`` measures it against long-double and mpmath
references): at most a few ulp over each function's whole domain, ``±0``, ``±inf`` and
NaN as IEEE functions return them, no spurious overflow (sigmoid, softplus, tanh at
±1e308) or flush to zero (exp, sigmoid and softplus return subnormals).

Coefficients: exp and expm1 use the Taylor series (truncated where the next term is
below 2**-60 relative); log and log1p use FreeBSD msun's minimax coefficients for
``log1p(f) = f - f*f/2 + s*(f*f/2 + R(s*s))``, ``s = f/(2+f)`` (e_log.c, e_logf.c).

sin and cos reduce every argument the same way, a Payne-Hanek reduction that LLVM can
vectorise (no branch, the table read a gather): x/(2*pi) = |x| * K, where K is 1/(2*pi)
less the high bits that multiply |x| (an integer times 2**(E-52)) into whole turns, held
per binade E >= 54 as four 53-bit pieces (a ~1,400-bit 1/pi computed once at import, in
integer arithmetic); the whole and quarter turns of the exact products are removed
before the small parts are summed (compensated), so the reduced argument is good to
~2**-150 turns, enough for the closest double to a multiple of pi/2.  fdlibm's kernels
(k_sin.c, k_cos.c) finish on the double-double remainder.  The float32 versions are the
float64 ones rounded (as glibc's sinf computes in double).
"""

from __future__ import annotations

import decimal
import math
from dataclasses import dataclass

import numpy as np

#: The public names: what fused loops call.
FUNCTIONS = ("exp", "log", "log1p", "expm1", "tanh", "sigmoid", "softplus", "sin", "cos")

_INTRINSICS = {
    "_vm_bits": '''
@numba.extending.intrinsic
def _vm_bits(typingctx, x):
    """The IEEE bits of a float as an integer of the same width (a bit cast)."""
    itype = numba.types.int64 if x.bitwidth == 64 else numba.types.int32

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], context.get_value_type(itype))
    return itype(x), codegen
''',
    "_vm_from_bits": '''
@numba.extending.intrinsic
def _vm_from_bits(typingctx, i, like):
    """The float of `like`'s type whose IEEE bits are the low bits of integer `i`."""
    itype = numba.types.int64 if like.bitwidth == 64 else numba.types.int32

    def codegen(context, builder, sig, args):
        bits = args[0]
        if i.bitwidth > itype.bitwidth:
            bits = builder.trunc(bits, context.get_value_type(itype))
        return builder.bitcast(bits, context.get_value_type(like))
    return like(i, like), codegen
''',
    "_vm_fma": '''
@numba.extending.intrinsic
def _vm_fma(typingctx, a, b, c):
    """a * b + c with one rounding (llvm.fma: one instruction on x86-64 with FMA)."""
    t = typingctx.unify_types(a, b, c)

    def codegen(context, builder, sig, args):
        return builder.fma(*args)
    return t(t, t, t), codegen
''',
    "_vm_select": '''
@numba.extending.intrinsic
def _vm_select(typingctx, c, a, b):
    """a if c else b as one LLVM select (no branch; the functions Numba inlines use it
    rather than conditional expressions, whose inlined phis Numba's SSA pass flags)."""
    t = typingctx.unify_types(a, b)

    def codegen(context, builder, sig, args):
        va = context.cast(builder, args[1], a, t)
        vb = context.cast(builder, args[2], b, t)
        return builder.select(args[0], va, vb)
    return t(numba.types.boolean, a, b), codegen
''',
    "_vm_rpi": '''
def _vm_rpi_table():
    """Payne-Hanek's table for sin and cos: for binades E = 54 .. 1023 of |x|, four
    float64 pieces of 1/(2*pi) mod 2**(52-E) (scaled by 2**600 from E = 601 on, where
    the pieces would be subnormal).  1/pi from Machin's formula in integers."""
    prec = 1500
    one = 1 << (prec + 20)

    def arctan_inv(n):
        total, term, k, sign = 0, one // n, 1, 1
        while term:
            total += sign * (term // k)
            term //= n * n
            k += 2
            sign = -sign
        return total
    pi = 4 * (4 * arctan_inv(5) - arctan_inv(239))           # pi * 2**(prec+20)
    inv = (one << prec) // (2 * pi)                          # 1/(2pi) * 2**prec
    table = np.empty((1024 - 54) * 4)
    for e in range(54, 1024):
        k = inv & ((1 << (prec + 52 - e)) - 1)               # 1/(2pi) mod 2**(52-e)
        scale = 600 if e > 600 else 0
        for j in range(4):
            top = k.bit_length()
            piece = (k >> max(top - 53, 0)) << max(top - 53, 0) if j < 3 else k
            table[(e - 54) * 4 + j] = math.ldexp(float(piece >> max(top - 60, 0)),
                                                 max(top - 60, 0) - prec + scale) \
                if top > 0 else 0.0
            k -= piece
    return table


_vm_rpi = _vm_rpi_table()
''',
    "_vm_typed": '''
def _vm_typed(x, f32, f64):
    """An overload's implementation: the float32 version for float32, else float64
    (ints and bools converted first, so the versions are compiled for floats only)."""
    if x == numba.types.float32:
        return lambda x: f32(x)
    return lambda x: f64(float(x))
''',
}


@dataclass(frozen=True)
class _Float:
    """What a template needs to know about one float type."""
    name: str                 # suffix of the generated functions
    bits: int
    mant: int                 # explicit mantissa bits
    exp_poly: int             # degree of the Taylor polynomial for exp on |r| <= ln2/2
    expm1_poly: int           # degree of expm1's
    log_poly: tuple           # msun's Lg1.. coefficients
    tanh_clamp: float         # tanh(x) rounds to 1 beyond this

    def lit(self, v):
        """A literal of this type in generated source."""
        v = float(v)
        if math.isinf(v) or math.isnan(v):
            v = {"inf": "math.inf", "-inf": "-math.inf", "nan": "math.nan"}[repr(v)]
            return v if self.bits == 64 else f"np.float32({v})"
        if self.bits == 64:
            return repr(v)
        return f"np.float32({float(np.float32(v))!r})"

    @property
    def bias(self):
        return (1 << (self.bits - self.mant - 2)) - 1

    def split(self, v):
        """The Decimal `v` as hi + lo, hi with its low bits zero so that k * hi is exact
        for |k| < 2**12 (2**9 for float32), lo the rest rounded to this type."""
        keep = self.mant + 1 - (12 if self.bits == 64 else 9)
        m, e = math.frexp(float(v))
        hi = math.ldexp(math.floor(math.ldexp(m, keep)), e - keep)
        return hi, float(v - decimal.Decimal(hi))

    @property
    def min_normal(self):
        return math.ldexp(1.0, 1 - self.bias)

    @property
    def exp_range(self):
        """Clamps for exp's argument: beyond them the result is inf or 0 anyway."""
        top = (self.bias + 1) * math.log(2.0)                    # log of the overflow threshold
        bottom = (1 - self.bias - self.mant) * math.log(2.0) - 1   # below half the least subnormal
        return math.ceil(bottom) - 1, math.ceil(top)


F64 = _Float("f64", 64, 52, exp_poly=13, expm1_poly=13,
             log_poly=(6.666666666666735130e-01, 3.999999999940941908e-01,
                       2.857142874366239149e-01, 2.222219843214978396e-01,
                       1.818357216161805012e-01, 1.531383769920937332e-01,
                       1.479819860511658591e-01),
             tanh_clamp=20.0)
F32 = _Float("f32", 32, 23, exp_poly=7, expm1_poly=8,
             log_poly=(0xaaaaaa * 2.0 ** -24, 0xccce13 * 2.0 ** -25,
                       0x91e9ee * 2.0 ** -25, 0xf89e26 * 2.0 ** -26),
             tanh_clamp=9.0)


_LN2 = decimal.Context(prec=60).ln(2)


def _horner(t, var, coeffs):
    """sum(coeffs[i] * var**i) as nested fused multiply-adds."""
    expr = t.lit(coeffs[-1])
    for c in reversed(coeffs[:-1]):
        expr = f"_vm_fma({expr}, {var}, {t.lit(c)})"
    return expr


def _pow2(t, k):
    """2**k for an integral float k in the normal range, built from its bits."""
    return f"_vm_from_bits((np.int64({k}) + {t.bias}) << {t.mant}, {k})"


def _reduce_ln2(t, arg):
    """Statements: k = round(arg / ln2), r = arg - k*ln2 (Cody-Waite: r1 = arg - k*hi
    is exact, r = r1 - k*lo is rounded once)."""
    hi, lo = t.split(_LN2)
    return f"""k = np.floor({arg} * {t.lit(1 / math.log(2.0))} + {t.lit(0.5)})
    r1 = _vm_fma(k, {t.lit(-hi)}, {arg})
    r = _vm_fma(k, {t.lit(-lo)}, r1)"""


def _exp(t):
    lo, hi = t.exp_range
    taylor = [1 / math.factorial(n) for n in range(t.exp_poly + 1)]
    return f'''
def _exp_{t.name}(x):
    """exp(x): x = k*ln2 + r, exp(r) by its Taylor polynomial, times 2**k in two
    halves so that results near overflow and subnormal results come out right."""
    xc = x if x < {t.lit(hi)} else {t.lit(hi)}     # inf and NaN too (NaN restored below)
    xc = xc if xc > {t.lit(lo)} else {t.lit(lo)}
    {_reduce_ln2(t, "xc")}
    p = {_horner(t, "r", taylor)}
    k1 = np.floor(k * {t.lit(0.5)})
    y = p * {_pow2(t, "k1")} * {_pow2(t, "(k - k1)")}
    return y if x == x else x
'''


def _expm1(t):
    lo, hi = t.exp_range
    tail = [1 / math.factorial(n) for n in range(2, t.expm1_poly + 1)]
    return f'''
def _expm1_{t.name}(x):
    """exp(x) - 1 without cancellation: with x = k*ln2 + r it is
    2**k * expm1(r) + (2**k - 1), where 2**k - 1 is exact; r's rounding error c is
    carried into expm1(r)."""
    xc = x if x < {t.lit(hi)} else {t.lit(hi)}     # NaN restored below
    xc = xc if xc > {t.lit(-2 * t.mant)} else {t.lit(-2 * t.mant)}   # expm1 rounds to -1
    {_reduce_ln2(t, "xc")}
    c = _vm_fma(k, {t.lit(-t.split(_LN2)[1])}, r1 - r)   # r1 - r - k*lo, exact
    q = _vm_fma(r * r, {_horner(t, "r", tail)}, r)
    q = _vm_fma(c, q + {t.lit(1)}, q)
    top = k > {t.lit(t.bias)}                        # 2**k would overflow: halve it
    s = {_pow2(t, f"(k - {t.lit(1)} if top else k)")}
    y = _vm_fma(s, q, s - ({t.lit(0.5)} if top else {t.lit(1)}))
    y = y * {t.lit(2)} if top else y
    return y if (x == x) & (x != {t.lit(0)}) else x      # NaN, and the sign of zero
'''


def _log_core(t):
    odd, even = t.log_poly[0::2], t.log_poly[1::2]
    hi, lo = t.split(_LN2)
    mant_mask = (1 << t.mant) - 1
    exp_mask = (1 << (t.bits - t.mant - 1)) - 1
    return f'''
def _log_core_{t.name}(u, c, shift):
    """log(u) + c for finite u > 0 with u's exponent raised by `shift` (msun's
    formula): u = m * 2**k, m in [sqrt(2)/2, sqrt(2)), f = m - 1,
    log(u) = k*ln2 + f - f*f/2 + s*(f*f/2 + R(s*s)), s = f / (2 + f)."""
    i = _vm_bits(u)
    k = ((i >> {t.mant}) & {exp_mask}) - {t.bias} - shift
    m = _vm_from_bits((i & {mant_mask}) | ({t.bias} << {t.mant}), u)
    big = m > {t.lit(math.sqrt(2.0))}
    m = m * {t.lit(0.5)} if big else m
    kf = {"np.float64" if t.bits == 64 else "np.float32"}(k + 1 if big else k)
    f = m - {t.lit(1)}
    s = f / (f + {t.lit(2)})
    z = s * s
    w = z * z
    R = z * {_horner(t, "w", odd)} + w * {_horner(t, "w", even)}
    hfsq = {t.lit(0.5)} * f * f
    return kf * {t.lit(hi)} - ((hfsq - (s * (hfsq + R) + _vm_fma(kf, {t.lit(lo)}, c))) - f)
'''


def _log(t):
    return f'''
def _log_{t.name}(x):
    """log(x): subnormal x is scaled into the normal range first."""
    tiny = x < {t.lit(t.min_normal)}
    u = x * {t.lit(2.0 ** (t.mant + 2))} if tiny else x
    y = _log_core_{t.name}(u, {t.lit(0)}, {t.mant + 2} if tiny else 0)
    y = y if x > {t.lit(0)} else ({t.lit(-math.inf)} if x == {t.lit(0)} else {t.lit(math.nan)})
    return y if x < {t.lit(math.inf)} else x
'''


def _log1p(t):
    return f'''
def _log1p_{t.name}(x):
    """log(1 + x): log(u) of u = 1 + x (rounded) plus the rounding error of that sum
    over u, which an exact two-sum gives (the larger operand first)."""
    u = {t.lit(1)} + x
    e = ({t.lit(1)} - (u - x)) if x > {t.lit(1)} else (x - (u - {t.lit(1)}))
    y = _log_core_{t.name}(u, e / u, 0)
    y = y if u > {t.lit(0)} else ({t.lit(-math.inf)} if u == {t.lit(0)} else {t.lit(math.nan)})
    y = y if x < {t.lit(math.inf)} else x
    return y if x != {t.lit(0)} else x                  # the sign of zero
'''


def _tanh(t):
    return f'''
def _tanh_{t.name}(x):
    """tanh(x) = -expm1(-2|x|) / (expm1(-2|x|) + 2), with the sign of x."""
    a = abs(x)
    a = a if a < {t.lit(t.tanh_clamp)} else {t.lit(t.tanh_clamp)}   # NaN restored below
    e = _expm1_{t.name}({t.lit(-2)} * a)
    y = math.copysign(-e / (e + {t.lit(2)}), x)
    return y if x == x else x
'''


def _sigmoid(t):
    return f'''
def _sigmoid_{t.name}(x):
    """1 / (1 + exp(-x)) from e = exp(-|x|), which never overflows."""
    e = _exp_{t.name}(-abs(x))
    s = {t.lit(1)} / ({t.lit(1)} + e)
    return s if x >= {t.lit(0)} else e * s
'''


def _softplus(t):
    return f'''
def _softplus_{t.name}(x):
    """log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)), which never overflows.  Inlined
    by Numba (so a loop calls exp and log1p itself): one function holding both
    is too big for LLVM to inline into the loop, which then would not vectorise."""
    return (x if x > {t.lit(0)} else {t.lit(0)}) + _log1p_{t.name}(_exp_{t.name}(-abs(x)))
'''


# fdlibm's k_sin.c and k_cos.c: |r| <= pi/4, r = rh + rl.
_SIN_POLY = (-1.66666666666666324348e-01, 8.33333333332248946124e-03,
             -1.98412698298579493134e-04, 2.75573137070700676789e-06,
             -2.50507602534068634195e-08, 1.58969099521155010221e-10)
_COS_POLY = (4.16666666666666019037e-02, -1.38888888888741095749e-03,
             2.48015872894767294178e-05, -2.75573143513906633035e-07,
             2.08757232129817482790e-09, -1.13596475577881948265e-11)
_TWO_PI = 2 * decimal.Decimal(
    "3.14159265358979323846264338327950288419716939937510582097494459")


def _two_sum(a, b, s, e):
    return f"""{s} = {a} + {b}
    _t = {s} - {a}
    {e} = ({a} - ({s} - _t)) + ({b} - _t)"""


def _quarters(v, d, q):
    """d = v - (v rounded to quarters), exact; q = the quarter count mod 4's offset."""
    return f"""_r4 = 4.0 * {v}
    _r4 = _vm_select(abs(_r4) >= 4503599627370496.0, _r4, np.floor(_r4 + 0.5))
    _r1 = _vm_select(abs({v}) >= 4503599627370496.0, {v}, np.floor({v} + 0.5))
    {d} = _vm_fma(-0.25, _r4, {v})
    {q} = _vm_fma(-4.0, _r1, _r4)"""


def _rem_pio2():
    two_pi_hi = float(_TWO_PI)
    two_pi_lo = float(_TWO_PI - decimal.Decimal(two_pi_hi))
    return f'''
def _vm_rem_pio2(x):
    """|x| = (n + r / (pi/2)) * (pi/2) with r = rh + rl in [-pi/4, pi/4] (a little beyond
    it), n mod 4: Payne-Hanek with the table `_vm_rpi` (see the module's docstring)."""
    a = abs(x)
    a = _vm_select(a < math.inf, a, 0.0)                     # inf and NaN: restored by callers
    e = ((_vm_bits(a) >> 52) & 2047) - 1023
    e = _vm_select(e > 54, e, 54)
    j = (e - 54) * 4
    ac = _vm_select(e > 600, a * 2.409919865102884e-181, a)       # 2**-600
    c0 = _vm_rpi[j]
    c1 = _vm_rpi[j + 1]
    c2 = _vm_rpi[j + 2]
    c3 = _vm_rpi[j + 3]
    h0 = ac * c0
    l0 = _vm_fma(ac, c0, -h0)
    {_quarters("h0", "d0", "q0")}
    h1 = ac * c1
    l1 = _vm_fma(ac, c1, -h1)
    {_two_sum("l0", "h1", "s1", "e1")}
    {_two_sum("d0", "s1", "s2", "e2")}
    {_quarters("s2", "s", "q1")}
    h2 = ac * c2
    l2 = _vm_fma(ac, c2, -h2)
    {_two_sum("s", "e2", "t1", "f1")}
    {_two_sum("t1", "e1", "t2", "f2")}
    {_two_sum("t2", "l1", "t3", "f3")}
    {_two_sum("t3", "h2", "t4", "f4")}
    c = ((f1 + f2) + (f3 + f4)) + (l2 + ac * c3)
    th = t4 + c
    tl = c - (th - t4)
    rh = th * {two_pi_hi!r}
    rl = _vm_fma(th, {two_pi_hi!r}, -rh) + (th * {two_pi_lo!r} + tl * {two_pi_hi!r})
    small = a < 0.7
    n = np.int64(q0 + q1) & 3
    return _vm_select(small, a, rh), _vm_select(small, 0.0, rl), _vm_select(small, 0, n)
'''


def _sincos_kernels():
    s, c = _SIN_POLY, _COS_POLY
    return f'''
def _vm_sin_cos(rh, rl):
    """fdlibm's __kernel_sin and __kernel_cos of rh + rl, |rh| <= pi/4."""
    z = rh * rh
    v = z * rh
    p = {_horner(F64, "z", s[1:])}
    sn = rh - ((z * (0.5 * rl - v * p) - rl) - v * {s[0]!r})
    w = z * z
    r = z * {_horner(F64, "z", c[:3])} + w * w * {_horner(F64, "z", c[3:])}
    hz = 0.5 * z
    w = 1.0 - hz
    cs = w + (((1.0 - w) - hz) + (z * r - rh * rl))
    return sn, cs
'''


def _sin(t):
    if t.bits == 32:
        return """
def _sin_f32(x):
    \"\"\"sin(x): the float64 version rounded.\"\"\"
    return np.float32(_sin_f64(np.float64(x)))
"""
    return '''
def _sin_f64(x):
    """sin(x) = sign(x) * sin(n*pi/2 + r), |x| reduced by `_vm_rem_pio2`."""
    rh, rl, n = _vm_rem_pio2(x)
    sn, cs = _vm_sin_cos(rh, rl)
    y = _vm_select((n & 1) == 0, sn, cs)
    y = _vm_select(((n & 2) != 0) != (_vm_bits(x) < 0), -y, y)
    return _vm_select(abs(x) < math.inf, y, x - x)
'''


def _cos(t):
    if t.bits == 32:
        return """
def _cos_f32(x):
    \"\"\"cos(x): the float64 version rounded.\"\"\"
    return np.float32(_cos_f64(np.float64(x)))
"""
    return '''
def _cos_f64(x):
    """cos(x) = cos(n*pi/2 + r), |x| reduced by `_vm_rem_pio2`."""
    rh, rl, n = _vm_rem_pio2(x)
    sn, cs = _vm_sin_cos(rh, rl)
    y = _vm_select((n & 1) == 0, cs, sn)
    y = _vm_select(((n + 1) & 2) != 0, -y, y)
    return _vm_select(abs(x) < math.inf, y, x - x)
'''


_TEMPLATES = [_exp, _expm1, _log_core, _log, _log1p, _tanh, _sigmoid, _softplus, _sin, _cos]
_NUMBA_INLINED = (_softplus, _sin, _cos)
#: float64 helpers of sin and cos (inlined by Numba, as softplus: the loop must see it all)
_HELPERS = (_rem_pio2, _sincos_kernels)


def _dispatcher(name):
    return f'''
def _{name}(x):
    """{name}(x) for fused loops: float32 arguments get the float32 version, any
    other number the float64 one (by the Numba type, in compiled code, where the
    overload is inlined so that the loop calls the version directly)."""
    return _{name}_f32(x) if isinstance(x, np.float32) else _{name}_f64(x)


@numba.extending.overload(_{name}, inline="always")
def _{name}_overload(x):
    return _vm_typed(x, _{name}_f32, _{name}_f64)
'''


def definitions(decorator):
    """name -> source of every function here; `decorator` is the runtime's ``njit``
    line.  Dispatchers are named ``_exp``, ``_log`` ..., their versions ``_exp_f64``,
    ``_exp_f32`` ...; the rest are the intrinsics they share."""
    defs = {name: src.lstrip("\n") for name, src in _INTRINSICS.items()}
    for template in _TEMPLATES:
        for t in (F64, F32):
            src = template(t)
            name = src.split("def ", 1)[1].split("(", 1)[0]
            inline = ", inline='always')" if template in _NUMBA_INLINED else ")"
            defs[name] = decorator[:-1] + inline + src
    for helper in _HELPERS:
        src = helper()
        name = src.split("def ", 1)[1].split("(", 1)[0]
        defs[name] = decorator[:-1] + ", inline='always')" + src
    for name in FUNCTIONS:
        defs[f"_{name}"] = _dispatcher(name).lstrip("\n")
    return defs
