"""The op table: every primitive op of graphc, each defined exactly once.

An entry holds everything the rest of graphc needs to know about an op:

* ``impl``     - the NumPy implementation (used by the reference interpreter and the tape);
* ``shape``    - the shape rule ``shape(arg_shapes, meet, **params)`` (see ``graphc.shapes``);
* ``dtype``    - the dtype rule (default: NumPy promotion of the argument dtypes);
* ``lowering`` - how it compiles (``graphc.lowering``): for elementwise ops a
  ``PerElement`` record with the scalar Numba template, its helper function and the
  SymPy form loop bodies are optimised with; a reduction's accumulator, a view, a
  BLAS call ...;  an op without one cannot be compiled, and says so;
* ``sym``      - for elementwise ops, the scalar SymPy form ``sym(sympy, *symbols)``;
* ``partials`` - for elementwise ops, one rule per argument giving d out / d arg;
* ``vjp``/``jvp`` - for the other ops, reverse and forward derivative rules.

Adding an elementwise op is one ``elementwise_op(...)`` call here and one test case;
a structural op is one ``register(Op(...))`` with its lowering, and one test case.

Derivative rules are written against a namespace ``F`` of primitive functions rather
than against NumPy or the graph: ``graphc.autodiff`` hands them the graph-building
namespace (so a gradient is a graph), the tape hands them a NumPy namespace (so the
eager baseline runs the very same rules).  This is JAX's "a set of primitives and a
set of interpreters", kept as small as a table.

Elementwise rules get ``partials`` only: the VJP (``g * partial``, summed back over
broadcast axes) and the JVP (``sum of partial * tangent``) both follow from them.  A
partial of ``None`` means the argument is not differentiable (zero gradient); a partial
that returns the Python number 1 or -1 lets autodiff pass the adjoint through unscaled.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import special as _special

from .lowering import Call, Code, Lowering, PerElement, Reduce, Rewrite, Size, View
from .shapes import ShapeError, broadcast_shapes, format_shape

OPS: dict[str, Op] = {}


def promote(dtypes, **_):
    """NumPy promotion over the argument dtypes (bool arguments act as numbers)."""
    return np.result_type(*dtypes)


@dataclass(eq=False, frozen=True, kw_only=True)
class Op:
    name: str
    kind: str                      # "elementwise" | "reduction" | "structure" | "linalg" | "meta"
    arity: int
    impl: Callable
    shape: Callable
    dtype: Callable = promote      # NumPy promotion of the argument dtypes
    lowering: Lowering | None = None   # how it compiles (graphc.lowering); None: it cannot
    sym: Callable | None = None          # elementwise: the scalar SymPy form
    partials: tuple | None = None
    vjp: Callable | None = None
    jvp: Callable | None = None
    doc: str = ""
    params: tuple = field(default=())    # names of the op's static parameters
    public: bool = True                  # a graphc function of its name (else plumbing
                                         # that other functions build, e.g. adjoints)
    shape_only: tuple = ()               # indices of arguments whose values are not read
                                         # (only their shapes): never differentiated

    def __repr__(self):
        return f"<op {self.name}>"

    @property
    def differentiable(self):
        if self.kind == "elementwise":
            return self.partials is not None and any(p is not None for p in self.partials)
        return self.vjp is not None

    @property
    def fingerprint(self):
        """What, beyond its name, the compiled code of this op depends on (hashed into
        cache keys): nothing for built-in ops, whose definitions are graphc's source."""
        return ""

    def differentiable_in(self, i):
        """Whether the output's value depends differentiably on argument `i`."""
        if self.kind == "elementwise":
            return self.partials is not None and self.partials[i] is not None
        return self.vjp is not None and i not in self.shape_only


def float_dtype(dtypes, **_):
    """The float dtype a computation on these arguments is done in: float64 for bool
    and integer arguments (as NumPy's mean, log ...)."""
    dt = np.result_type(*dtypes)
    return dt if dt.kind == "f" else np.dtype(np.float64)


def _bool_dtype(dtypes, **_):
    return np.dtype(bool)


def _elementwise_shape(name):
    def rule(shapes, meet, **_):
        return broadcast_shapes(name, shapes, meet)
    return rule


def register(op):
    if op.name in OPS:
        raise ValueError(f"an op named {op.name!r} is already in the op table")
    OPS[op.name] = op
    return op


def elementwise_op(name, arity, impl, sym, code, partials, dtype=promote, doc="", helper=None,
                   code_sym="sym", public=True, scalar=None, scalar_helper=None):
    """Register an elementwise op.  `code_sym` defaults to `sym`: pass None when the
    SymPy form would not compute the same as `code` (NaN handling), or a stable form."""
    lowering = PerElement(code=code, helper=helper, scalar=scalar, scalar_helper=scalar_helper,
                          code_sym=sym if code_sym == "sym" else code_sym)
    return register(Op(name=name, kind="elementwise", arity=arity, impl=impl,
                       shape=_elementwise_shape(name), dtype=dtype, lowering=lowering,
                       sym=sym, partials=partials, doc=doc, public=public))


def _in_float(np_fn):
    """`np_fn` computed in float64 for bool and integer arguments (NumPy computes
    ``exp(True)`` in float16)."""
    def impl(*args):
        args = [np.asarray(a, np.float64) if np.asarray(a).dtype.kind in "biu" else a
                for a in args]
        return np_fn(*args)
    impl.__name__ = getattr(np_fn, "__name__", "impl")
    return impl


def float_op(name, arity, impl, *rest, **options):
    """An elementwise op whose value is a float whatever its arguments (exp, division
    ...): bool and integer arguments are computed in float64, as NumPy does."""
    return elementwise_op(name, arity, _in_float(impl), *rest, dtype=float_dtype, **options)


def _log1p(sp, x):
    from sympy.codegen.cfunctions import log1p
    return log1p(x)


# ---------------------------------------------------------------------------------
# Elementwise ops.  `code` templates receive plain variable names, so an argument may
# appear more than once without being evaluated twice.
# ---------------------------------------------------------------------------------

def _stable_sigmoid(x):
    return _special.expit(x)


def _stable_softplus(x):
    return np.logaddexp(0, x)


def _maximum_partial(a, b, F):
    """d max(a, b) / d a: 1 where a wins, 0 where b wins, 1/2 at a tie (as PyTorch)."""
    return F.where(F.greater(a, b), 1.0, F.where(F.less(a, b), 0.0, 0.5))


elementwise_op("neg", 1, np.negative, lambda sp, x: -x, "(-{0})",
               (lambda F, out, x: -1,))
elementwise_op("add", 2, np.add, lambda sp, a, b: a + b, "({0} + {1})",
               (lambda F, out, a, b: 1, lambda F, out, a, b: 1))
elementwise_op("sub", 2, np.subtract, lambda sp, a, b: a - b, "({0} - {1})",
               (lambda F, out, a, b: 1, lambda F, out, a, b: -1))
elementwise_op("mul", 2, np.multiply, lambda sp, a, b: a * b, "({0} * {1})",
               (lambda F, out, a, b: b, lambda F, out, a, b: a))
float_op("div", 2, np.divide, lambda sp, a, b: a / b, "({0} / {1})",
               (lambda F, out, a, b: 1.0 / b, lambda F, out, a, b: -out / b))
def _pow_base_partial(F, out, a, b):
    """b * a**(b - 1), written so that it is 0, not 0 * inf = NaN, where b == 0 (x**0
    is constant): the exponent is replaced there, and so is every higher derivative's
    (the "double where": the unused branch must be finite too, or its derivative is NaN)."""
    return b * F.pow(a, F.where(F.equal(b, 0.0), 1.0, b - 1.0))


def _pow_exponent_partial(F, out, a, b):
    """a**b * log(a), with log(1) for a == 0: where a**b is 0 (b > 0) the derivative
    is 0, not 0 * -inf = NaN (as JAX and autograd)."""
    return out * F.log(F.where(F.equal(a, 0.0), 1.0, a))


elementwise_op("pow", 2, np.power, lambda sp, a, b: a ** b, "({0} ** {1})",
               (_pow_base_partial, _pow_exponent_partial))
float_op("exp", 1, np.exp, lambda sp, x: sp.exp(x), "_exp({0})", scalar="math.exp({0})",
         partials=(lambda F, out, x: out,))
float_op("log", 1, np.log, lambda sp, x: sp.log(x), "_log({0})", scalar="math.log({0})",
         partials=(lambda F, out, x: 1.0 / x,))
float_op("log1p", 1, np.log1p, lambda sp, x: sp.log(1 + x), "_log1p({0})",
         scalar="math.log1p({0})", partials=(lambda F, out, x: 1.0 / (1.0 + x),), code_sym=_log1p)
float_op("sqrt", 1, np.sqrt, lambda sp, x: sp.sqrt(x), "math.sqrt({0})",
               (lambda F, out, x: 0.5 / out,))
elementwise_op("square", 1, np.square, lambda sp, x: x ** 2, "({0} * {0})",
               (lambda F, out, x: 2.0 * x,))
elementwise_op("abs", 1, np.abs, lambda sp, x: sp.Abs(x), "abs({0})",
               (lambda F, out, x: F.sign(x),))
elementwise_op("sign", 1, np.sign, lambda sp, x: sp.sign(x),
               "_sign({0})", (None,), code_sym=None, helper="""
def _sign(x):
    if x > 0:
        return 1.0
    if x < 0:
        return -1.0
    return x * 0.0      # keeps 0 and NaN
""")
float_op("sin", 1, np.sin, lambda sp, x: sp.sin(x), "_sin({0})", scalar="math.sin({0})",
         partials=(lambda F, out, x: F.cos(x),))
float_op("cos", 1, np.cos, lambda sp, x: sp.cos(x), "_cos({0})", scalar="math.cos({0})",
         partials=(lambda F, out, x: -F.sin(x),))
float_op("tanh", 1, np.tanh, lambda sp, x: sp.tanh(x), "_tanh({0})", scalar="math.tanh({0})",
         partials=(lambda F, out, x: 1.0 - out * out,))
float_op("sigmoid", 1, _stable_sigmoid, lambda sp, x: 1 / (1 + sp.exp(-x)),
               "_sigmoid({0})", (lambda F, out, x: out * (1.0 - out),),
               scalar="_sigmoid_scalar({0})", scalar_helper="""
def _sigmoid_scalar(x):
    e = math.exp(-abs(x))          # never overflows
    s = 1.0 / (1.0 + e)
    return s if x >= 0 else e * s
""",
               code_sym=lambda sp, x: sp.Piecewise((1 / (1 + sp.exp(-sp.Abs(x))), x >= 0),
                                                   (sp.exp(-sp.Abs(x)) / (1 + sp.exp(-sp.Abs(x))),
                                                    True)),
               doc="1 / (1 + exp(-x)), evaluated without overflow for large |x|")
elementwise_op("relu", 1, lambda x: np.maximum(x, 0), lambda sp, x: sp.Max(x, 0),
               "_relu({0})",
               (lambda F, out, x: F.greater(x, 0),),      # a bool mask keeps x's dtype
               code_sym=None,
               doc="max(x, 0); its derivative at 0 is taken to be 0", helper="""
def _relu(x):
    return 0.0 if x <= 0 else x    # NaN stays NaN
""")
float_op("softplus", 1, _stable_softplus, lambda sp, x: sp.log(1 + sp.exp(x)),
               "_softplus({0})",
               (lambda F, out, x: F.sigmoid(x),),
               scalar="(max({0}, 0.0) + math.log1p(math.exp(-abs({0}))))",
               code_sym=lambda sp, x: sp.Max(x, 0) + _log1p(sp, sp.exp(-sp.Abs(x))),
               doc="log(1 + exp(x)), evaluated without overflow for large |x|")
elementwise_op("maximum", 2, np.maximum, lambda sp, a, b: sp.Max(a, b),
               "_maximum({0}, {1})",
               (lambda F, out, a, b: _maximum_partial(a, b, F),
                lambda F, out, a, b: _maximum_partial(b, a, F)), code_sym=None,
               doc="NaN-propagating maximum; at a tie each argument gets half the gradient",
               helper="""
def _maximum(a, b):
    return a if (a >= b or a != a) else b
""")
elementwise_op("minimum", 2, np.minimum, lambda sp, a, b: sp.Min(a, b),
               "_minimum({0}, {1})",
               (lambda F, out, a, b: _maximum_partial(b, a, F),
                lambda F, out, a, b: _maximum_partial(a, b, F)), code_sym=None,
               doc="NaN-propagating minimum; at a tie each argument gets half the gradient",
               helper="""
def _minimum(a, b):
    return a if (a <= b or a != a) else b
""")
elementwise_op("where", 3, np.where, lambda sp, c, a, b: sp.Piecewise((a, c), (b, True)),
               "_where({0}, {1}, {2})",
               (None, lambda F, out, c, a, b: c, lambda F, out, c, a, b: F.equal(c, False)),
               dtype=lambda dtypes, **_: np.result_type(*dtypes[1:]), code_sym=None, helper="""
def _where(c, a, b):
    return a if c else b
""")

def comparison_op(name, np_fn, sympy_relation, token):
    """A comparison: a bool result, no derivative, and opaque to SymPy in loop bodies
    (its bool is used in arithmetic there)."""
    elementwise_op(name, 2, np_fn, lambda sp, a, b: getattr(sp, sympy_relation)(a, b),
                   f"({{0}} {token} {{1}})", (None, None), dtype=_bool_dtype, code_sym=None)


comparison_op("less", np.less, "StrictLessThan", "<")
comparison_op("less_equal", np.less_equal, "LessThan", "<=")
comparison_op("greater", np.greater, "StrictGreaterThan", ">")
comparison_op("greater_equal", np.greater_equal, "GreaterThan", ">=")
comparison_op("equal", np.equal, "Eq", "==")


def _integer_dtype(name):
    """Bitwise ops (``& | ^ ~``) take bool or integer operands: logical on bools,
    bitwise on integers, as in NumPy; floats are a TypeError when the graph is built."""
    def rule(dtypes, **_):
        if any(d.kind not in "biu" for d in dtypes):
            raise TypeError(f"{name}: operands must be bool or integer, got "
                            f"{', '.join(d.name for d in dtypes)}")
        return np.result_type(*dtypes)
    return rule


for _name, _np_fn, _token in [("bitwise_and", np.bitwise_and, "&"),
                              ("bitwise_or", np.bitwise_or, "|"),
                              ("bitwise_xor", np.bitwise_xor, "^")]:
    elementwise_op(_name, 2, _np_fn, None, f"({{0}} {_token} {{1}})", (None, None),
                   dtype=_integer_dtype(_name), code_sym=None)
elementwise_op("invert", 1, np.invert, None, "np.invert({0})", (None,),
               dtype=_integer_dtype("invert"), code_sym=None,
               doc="~x: logical not of bools, bitwise not of integers")

elementwise_op("mod", 2, np.mod, lambda sp, a, b: sp.Mod(a, b), "({0} % {1})",
               (lambda F, out, a, b: 1, lambda F, out, a, b: -F.floor(a / b)), code_sym=None,
               doc="a % b with the sign of b (NumPy's and Python's mod); "
                   "d/da = 1, d/db = -floor(a/b)")
elementwise_op("floor_divide", 2, np.floor_divide, lambda sp, a, b: sp.floor(a / b),
               "({0} // {1})", (None, None), code_sym=None,
               doc="a // b, rounded toward -inf; its gradient is zero")
for _name, _np_fn, _code in [("floor", np.floor, "np.floor({0})"),
                             ("ceil", np.ceil, "np.ceil({0})"),
                             ("round", np.rint, "np.rint({0})")]:
    float_op(_name, 1, _np_fn, None, _code, (None,), code_sym=None,
             doc=f"{_name} (to the nearest even integer at halves, as NumPy); zero gradient")

float_op("expm1", 1, np.expm1, lambda sp, x: sp.exp(x) - 1, "_expm1({0})",
         scalar="math.expm1({0})", partials=(lambda F, out, x: out + 1.0,), code_sym=None)
float_op("erf", 1, _special.erf, lambda sp, x: sp.erf(x), "math.erf({0})",
         (lambda F, out, x: (2.0 / math.sqrt(math.pi)) * F.exp(-(x * x)),))
float_op("tan", 1, np.tan, lambda sp, x: sp.tan(x), "math.tan({0})",
         (lambda F, out, x: 1.0 + out * out,))
float_op("arctan", 1, np.arctan, lambda sp, x: sp.atan(x), "math.atan({0})",
         (lambda F, out, x: 1.0 / (1.0 + x * x),))
float_op("arctan2", 2, np.arctan2, lambda sp, a, b: sp.atan2(a, b), "math.atan2({0}, {1})",
         (lambda F, out, a, b: b / (a * a + b * b), lambda F, out, a, b: -a / (a * a + b * b)))
float_op("log2", 1, np.log2, lambda sp, x: sp.log(x, 2), "math.log2({0})",
         (lambda F, out, x: (1.0 / math.log(2.0)) / x,), code_sym=None)
float_op("log10", 1, np.log10, lambda sp, x: sp.log(x, 10), "math.log10({0})",
         (lambda F, out, x: (1.0 / math.log(10.0)) / x,), code_sym=None)


register(Op(name="stop_gradient", kind="elementwise", arity=1, impl=lambda x: x,
            shape=_elementwise_shape("stop_gradient"), partials=(None,),
            lowering=PerElement(code="{0}", identity=True), sym=lambda sp, x: x,
            doc="x itself, treated as a constant by gradients (JAX's stop_gradient)"))


def _check_index_impl(i, n):
    i, n = np.asarray(i), np.asarray(n)
    if i.size and (i.min() < 0 or i.max() >= n.max()):
        bad = i[(i < 0) | (i >= n)].flat[0]
        raise IndexError(f"index {bad} is out of range for size {int(n.max())}")
    return i


elementwise_op("check_index", 2, _check_index_impl, None, "_check_index({0}, {1})",
               (None, None), dtype=lambda dtypes, **_: dtypes[0], code_sym=None, public=False,
               doc="i itself, after checking 0 <= i < n (IndexError otherwise)", helper="""
def _check_index(i, n):
    if i < 0 or i >= n:
        raise IndexError("an index is out of range")
    return i
""")


def _astype_impl(x, dtype):
    return np.asarray(x).astype(dtype, copy=False)


register(Op(name="astype", kind="elementwise", arity=1, impl=_astype_impl,
            shape=_elementwise_shape("astype"), lowering=PerElement(code="np.{dtype}({0})"),
            dtype=lambda dtypes, dtype: np.dtype(dtype), sym=lambda sp, x: x,
            partials=(lambda F, out, x: 1,), params=("dtype",),
            doc="conversion to another dtype (floats to integers truncate, as NumPy's)"))


# ---------------------------------------------------------------------------------
# Reductions: axis is a sorted tuple of non-negative axes; keepdims a bool.
# ---------------------------------------------------------------------------------

def _reduced_shape(shape, axis, keepdims):
    if keepdims:
        return tuple(1 if i in axis else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axis)


def _reduction_shape(shapes, meet, axis, keepdims):
    return _reduced_shape(shapes[0], axis, keepdims)


def _restore_axes(F, g, axis, keepdims):
    """A reduction's output as the rank of its input (size-1 axes where it reduced)."""
    return g if keepdims or not axis else F.expand_dims(g, axis=axis)


def _sum_vjp(F, g, out, x, axis, keepdims):
    return (F.broadcast_like(_restore_axes(F, g, axis, keepdims), x),)


def _sum_jvp(F, tangents, out, x, axis, keepdims):
    return F.sum(tangents[0], axis=axis, keepdims=keepdims)


def _argext_weights(F, out, x, axis, keepdims):
    """Where x attains its max (or min): ties share the gradient equally, as in PyTorch."""
    hit = F.where(F.equal(x, _restore_axes(F, out, axis, keepdims)), 1.0, 0.0)
    return hit / F.sum(hit, axis=axis, keepdims=True)


def _extremum_vjp(F, g, out, x, axis, keepdims):
    weights = _argext_weights(F, out, x, axis, keepdims)
    return (_restore_axes(F, g, axis, keepdims) * weights,)


def _extremum_jvp(F, tangents, out, x, axis, keepdims):
    weights = _argext_weights(F, out, x, axis, keepdims)
    return F.sum(tangents[0] * weights, axis=axis, keepdims=keepdims)


def _logsumexp_impl(x, axis, keepdims):
    x = np.asarray(x, dtype=float_dtype([np.asarray(x).dtype]))
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def _softmax_weights(F, out, x, axis, keepdims):
    """softmax(x) along `axis`, from the max rather than from `out`: exp(x - out) loses
    the log(n) in out when |out| is huge (1e308 + log 2 == 1e308).  The compiler's
    lowering of logsumexp builds the same max and sum nodes, so they are shared."""
    e = F.exp(x - F.max(x, axis=axis, keepdims=True))
    return e / F.sum(e, axis=axis, keepdims=True)


def _logsumexp_vjp(F, g, out, x, axis, keepdims):
    return (_restore_axes(F, g, axis, keepdims) * _softmax_weights(F, out, x, axis, keepdims),)


def _logsumexp_jvp(F, tangents, out, x, axis, keepdims):
    return F.sum(tangents[0] * _softmax_weights(F, out, x, axis, keepdims),
                 axis=axis, keepdims=keepdims)


def _counting_dtype(dtypes, **_):
    """sum of bools or integers counts in int64, as NumPy's sum does."""
    (dt,) = dtypes
    return np.dtype(np.int64) if dt.kind in "biu" else dt


def _logsumexp_lowering(F, node, args):
    """max, then sum(exp(x - max)) and log: two reductions the loop fuser knows, and
    the numerically stable form.  Bool or integer data is computed in float."""
    (x,) = args
    if x.dtype != node.dtype:
        x = F.astype(x, node.dtype)
    axis, keepdims = node.kwargs["axis"], node.kwargs["keepdims"]
    m = F.max(x, axis=axis, keepdims=True)
    if not keepdims:    # summing over the size-1 axes of m drops them
        return F.log(F.sum(F.exp(x - m), axis=axis)) + F.sum(m, axis=axis)
    return F.log(F.sum(F.exp(x - m), axis=axis, keepdims=True)) + m


for _name, _impl, _dtype, _lowering, _vjp, _jvp in [
        ("sum", np.sum, _counting_dtype, Reduce("sum"), _sum_vjp, _sum_jvp),
        ("max", np.max, promote, Reduce("max"), _extremum_vjp, _extremum_jvp),
        ("min", np.min, promote, Reduce("min"), _extremum_vjp, _extremum_jvp),
        ("logsumexp", _logsumexp_impl, float_dtype, Rewrite(_logsumexp_lowering),
         _logsumexp_vjp, _logsumexp_jvp)]:
    register(Op(name=_name, kind="reduction", arity=1, impl=_impl, shape=_reduction_shape,
                dtype=_dtype, lowering=_lowering, vjp=_vjp, jvp=_jvp,
                params=("axis", "keepdims")))


def _numel_impl(x, axis):
    return np.asarray(math.prod(x.shape[a] for a in axis), dtype=float_dtype([x.dtype]))


register(Op(name="numel", kind="meta", arity=1, impl=_numel_impl,
            shape=lambda shapes, meet, axis: (), dtype=float_dtype, lowering=Size(),
            params=("axis",), doc="the number of elements along `axis` (for mean); "
                                  "not differentiable: it depends on shapes only"))


# ---------------------------------------------------------------------------------
# Structure ops.
# ---------------------------------------------------------------------------------

def _transpose_shape(shapes, meet, axes):
    return tuple(shapes[0][a] for a in axes)


def _transpose_code(x, node, out_shape):
    axes = node.kwargs["axes"]
    if axes == tuple(range(len(axes))):
        return x
    return f"{x}.T" if axes == (1, 0) else f"np.transpose({x}, {axes})"


def _reshape_code(x, node, out_shape):
    """A view of the array, made contiguous first if it is not (a transpose's view)."""
    return f"np.ascontiguousarray({x}).reshape({out_shape})"


register(Op(name="transpose", kind="structure", arity=1,
            impl=lambda x, axes: np.transpose(x, axes), shape=_transpose_shape,
            lowering=View(_transpose_code, transparent=False), params=("axes",),
            vjp=lambda F, g, out, x, axes: (F.transpose(g, axes=tuple(int(i) for i in np.argsort(axes))),),
            jvp=lambda F, t, out, x, axes: F.transpose(t[0], axes=axes)))


def _reshape_shape(shapes, meet, shape):
    """``None`` in the target stands for the input's own (dynamic) leading dimension."""
    return tuple(shapes[0][0] if d is None else d for d in shape)


register(Op(name="reshape", kind="structure", arity=1,
            impl=lambda x, shape: np.reshape(x, _concrete(shape, x)), shape=_reshape_shape,
            lowering=View(_reshape_code), params=("shape",),
            vjp=lambda F, g, out, x, shape: (F.reshape(g, x.shape),),
            jvp=lambda F, t, out, x, shape: F.reshape(t[0], shape)))


def _concrete(shape, x):
    """A reshape target with its dynamic (leading) dimension filled in from `x`."""
    return tuple(-1 if d is None else d for d in shape)


def _expand_dims_shape(shapes, meet, axis):
    shape = list(shapes[0])
    for a in axis:
        shape.insert(a, 1)
    return tuple(shape)


register(Op(name="expand_dims", kind="structure", arity=1,
            impl=lambda x, axis: np.expand_dims(x, axis), shape=_expand_dims_shape,
            lowering=View(_reshape_code), params=("axis",),
            vjp=lambda F, g, out, x, axis: (F.sum(g, axis=axis, keepdims=False),),
            jvp=lambda F, t, out, x, axis: F.expand_dims(t[0], axis=axis)))


def unbroadcast(F, g, shape):
    """Sum an adjoint back to `shape` over the axes that broadcasting stretched.

    `shape` may hold ``None`` (a dynamic dimension, never 1), so the axes to sum are
    known when the graph is built."""
    lead = len(g.shape) - len(shape)
    stretched = tuple(lead + i for i, d in enumerate(shape)
                      if d == 1 and g.shape[lead + i] != 1)
    if stretched:
        g = F.sum(g, axis=stretched, keepdims=True)
    if lead:
        g = F.sum(g, axis=tuple(range(lead)), keepdims=False)
    return g


def _broadcast_to_shape(shapes, meet, shape):
    out = broadcast_shapes("broadcast_to", [shapes[0], shape], meet)
    if len(out) != len(shape) or any(isinstance(s, int) and o != s for o, s in zip(out, shape)):
        raise ShapeError(f"broadcast_to: shape {format_shape(shapes[0])} cannot be "
                         f"broadcast to {format_shape(shape)}")
    return out


register(Op(name="broadcast_to", kind="structure", arity=1,
            impl=lambda x, shape: np.broadcast_to(x, _concrete_like(shape, x)),
            shape=_broadcast_to_shape, lowering=PerElement(identity=True), params=("shape",),
            vjp=lambda F, g, out, x, shape: (unbroadcast(F, g, x.shape),),
            jvp=lambda F, t, out, x, shape: F.broadcast_to(t[0], shape)))


def _concrete_like(shape, x):
    lead = len(shape) - x.ndim
    return tuple(x.shape[i - lead] if d is None else d for i, d in enumerate(shape))


def _broadcast_like_shape(shapes, meet, **_):
    g, like = shapes
    out = broadcast_shapes("broadcast_like", [g, like], meet)
    if len(g) != len(like):
        raise ShapeError(f"broadcast_like: ranks differ: {format_shape(g)} and {format_shape(like)}")
    return like if out == tuple(like) else out


register(Op(name="broadcast_like", kind="structure", arity=2,
            impl=lambda g, like: np.broadcast_to(g, np.shape(like)),
            shape=_broadcast_like_shape, dtype=lambda dtypes: dtypes[0],
            lowering=PerElement(reads=(0,), identity=True),
            vjp=lambda F, g, out, x, like: (unbroadcast(F, g, x.shape), None),
            jvp=lambda F, t, out, x, like: F.broadcast_like(t[0], like), shape_only=(1,),
            doc="`g` stretched to the shape of `like` (whose values are not read); "
                "how a reduction's adjoint reaches a dynamic-shape input"))


# ---------------------------------------------------------------------------------
# Matrix product (1-D and 2-D operands, as NumPy's matmul).
# ---------------------------------------------------------------------------------

def _matmul_shape(shapes, meet, **_):
    """NumPy's matmul: 1-D operands are promoted (and the new axis dropped), leading
    (batch) dimensions broadcast."""
    a, b = shapes
    if not a or not b:
        raise ShapeError(f"matmul: operands must be at least 1-D, got shapes "
                         f"{format_shape(a)} and {format_shape(b)}")
    k_a = a[-1]
    k_b = b[0] if len(b) == 1 else b[-2]
    meet(k_a, k_b, lambda: f"matmul: shapes {format_shape(a)} and {format_shape(b)} "
                           f"are not aligned ({k_a} != {k_b})")
    if len(a) <= 2 and len(b) <= 2:
        return tuple(a[:-1]) + tuple(b[1:])
    batch = broadcast_shapes("matmul", [tuple(a[:-2]), tuple(b[:-2])], meet)
    rows = (a[-2],) if len(a) >= 2 else ()
    cols = (b[-1],) if len(b) >= 2 else ()
    return tuple(batch) + rows + cols


def _matmul_vjp(F, g, out, a, b):
    if a.ndim == 2 and b.ndim == 2:
        return g @ F.transpose(b, axes=(1, 0)), F.transpose(a, axes=(1, 0)) @ g
    if a.ndim == 1 and b.ndim == 2:
        return b @ g, F.expand_dims(a, axis=(1,)) * F.expand_dims(g, axis=(0,))
    if a.ndim == 2 and b.ndim == 1:
        return F.expand_dims(g, axis=(1,)) * F.expand_dims(b, axis=(0,)), g @ a
    if a.ndim == 1 and b.ndim == 1:
        return g * b, g * a
    return _broadcast_matmul_vjp(F, g, a, b)


def _broadcast_matmul_vjp(F, g, a, b):
    """With batch dimensions: promote 1-D operands, take the two products with swapped
    last axes, sum over the batch axes each operand was broadcast along."""
    a2 = F.expand_dims(a, axis=(0,)) if a.ndim == 1 else a
    b2 = F.expand_dims(b, axis=(1,)) if b.ndim == 1 else b
    g2 = F.expand_dims(g, axis=(g.ndim - 1,)) if a.ndim == 1 else g
    g2 = F.expand_dims(g2, axis=(g2.ndim,)) if b.ndim == 1 else g2
    swap = lambda t: F.transpose(t, axes=tuple(range(t.ndim - 2)) + (t.ndim - 1, t.ndim - 2))
    ga = unbroadcast(F, F.matmul(g2, swap(b2)), a2.shape)
    gb = unbroadcast(F, F.matmul(swap(a2), g2), b2.shape)
    ga = F.reshape(ga, a.shape) if a.ndim == 1 else ga
    gb = F.reshape(gb, b.shape) if b.ndim == 1 else gb
    return ga, gb


def _matmul_jvp(F, tangents, out, a, b):
    ta, tb = tangents
    terms = [F.matmul(ta, b) if ta is not None else None,
             F.matmul(a, tb) if tb is not None else None]
    terms = [t for t in terms if t is not None]
    return terms[0] if len(terms) == 1 else terms[0] + terms[1]


def _batched_matmul_lowering(F, node, args):
    """A matmul with batch dimensions becomes one over stacked matrices: both operands
    broadcast to the full batch, reshaped to (batch, m, k) and (batch, k, n), multiplied
    one matrix pair at a time by BLAS (``batched_matmul``) and reshaped back."""
    a, b = args
    if a.ndim <= 2 and b.ndim <= 2:
        return None
    a2 = F.expand_dims(a, 0) if a.ndim == 1 else a
    b2 = F.expand_dims(b, 1) if b.ndim == 1 else b
    batch = broadcast_shapes("matmul", [tuple(a2.shape[:-2]), tuple(b2.shape[:-2])])
    if any(d is None for d in batch[1:]):
        raise ShapeError("matmul: only the first batch dimension may be dynamic, got "
                         f"{format_shape(a.shape)} @ {format_shape(b.shape)}")
    lead = None if batch and batch[0] is None else -1

    def stacked(x):
        """x as (n, rows, cols): n the whole batch, or 1 for an operand without batch
        dimensions (the product broadcasts it); partial broadcasts are made whole."""
        own = tuple(x.shape[:-2])
        if all(d == 1 for d in own):
            return F.reshape(x, (1,) + tuple(x.shape[-2:]))
        if own != batch:
            if None in batch:
                raise ShapeError(f"matmul: cannot broadcast batch {format_shape(own)} to a "
                                 f"dynamic batch {format_shape(batch)}")
            x = F.broadcast_to(x, batch + tuple(x.shape[-2:]))
        return F.reshape(x, (lead,) + tuple(x.shape[-2:]))
    a3, b3 = stacked(a2), stacked(b2)
    product = F.apply("batched_matmul", a3, b3)
    return F.reshape(product, tuple(None if d is None else d for d in node.shape))


register(Op(name="matmul", kind="linalg", arity=2, impl=np.matmul, shape=_matmul_shape,
            lowering=Call("_dot", cast_operands=True, rewrite_fn=_batched_matmul_lowering),
            vjp=_matmul_vjp, jvp=_matmul_jvp))

_BMM = """
def _bmm(a, b):
    n = max(a.shape[0], b.shape[0])
    out = np.empty((n, a.shape[1], b.shape[2]), dtype=a.dtype)
    for i in range(n):
        out[i] = np.dot(a[i if a.shape[0] > 1 else 0], b[i if b.shape[0] > 1 else 0])
    return out
"""


def _batched_matmul_shape(shapes, meet, **_):
    (n, m, k), (n2, k2, p) = shapes
    meet(k, k2, lambda: f"batched_matmul: {k} != {k2}")
    (batch,) = broadcast_shapes("batched_matmul", [(n,), (n2,)], meet)
    return (batch, m, p)


def _batched_matmul_vjp(F, g, out, a, b):
    """The two products with swapped last axes, summed over the batch where an operand
    was shared by every pair (its batch size is 1)."""
    return (unbroadcast(F, F.apply("batched_matmul", g, F.transpose(b, axes=(0, 2, 1))), a.shape),
            unbroadcast(F, F.apply("batched_matmul", F.transpose(a, axes=(0, 2, 1)), g), b.shape))


register(Op(name="batched_matmul", kind="linalg", arity=2, impl=np.matmul,
            shape=_batched_matmul_shape, public=False,
            lowering=Code(lambda t, args, node, shape: [
                f"{t} = _bmm(np.ascontiguousarray({args[0]}), np.ascontiguousarray({args[1]}))"],
                helpers=(_BMM,)),
            vjp=_batched_matmul_vjp, jvp=_matmul_jvp,
            doc="(n, m, k) @ (n, k, p), one BLAS product per matrix pair (n may be 1 "
                "for either operand: it is then shared)"))


# ---------------------------------------------------------------------------------
# Indexing.  ``index`` is a normalised basic index (``graphc.api.getitem`` makes it):
# one entry per indexed axis or new axis: ("int", i) with 0 <= i < size, ("slice",
# start, stop, step, length) with concrete bounds (stop None: past the start of the
# axis, for negative steps), ("full",) for ``:`` and ("reverse",) for ``::-1`` over any
# dimension (dynamic ones too), ("new",) for None.
# ---------------------------------------------------------------------------------

def index_source(index):
    """A normalised index as Python source: ``1, 0:3:1, ::-1, None``."""
    parts = []
    for entry in index:
        kind = entry[0]
        if kind == "int":
            parts.append(str(entry[1]))
        elif kind == "slice":
            start, stop, step, _ = entry[1:]
            parts.append(f"{start}:{'' if stop is None else stop}:{step}")
        elif kind == "full":
            parts.append(":")
        elif kind == "reverse":
            parts.append("::-1")
        else:
            parts.append("None")
    return ", ".join(parts) or "()"


def _as_numpy_index(index):
    out = []
    for entry in index:
        kind = entry[0]
        if kind == "int":
            out.append(entry[1])
        elif kind == "slice":
            out.append(slice(*entry[1:4]))
        elif kind == "full":
            out.append(slice(None))
        elif kind == "reverse":
            out.append(slice(None, None, -1))
        else:
            out.append(None)
    return tuple(out)


def _getitem_shape(shapes, meet, index):
    shape, out, axis = shapes[0], [], 0
    for entry in index:
        kind = entry[0]
        if kind == "new":
            out.append(1)
            continue
        d = shape[axis]
        if kind == "slice":
            out.append(entry[4])
        elif kind in ("full", "reverse"):
            out.append(d)
        axis += 1
    return tuple(out) + tuple(shape[axis:])


register(Op(name="getitem", kind="structure", arity=1,
            impl=lambda x, index: np.asarray(x)[_as_numpy_index(index)],
            shape=_getitem_shape, params=("index",),
            lowering=View(lambda x, node, out_shape: f"{x}[{index_source(node.kwargs['index'])}]",
                          transparent=False, indexes=True),
            vjp=lambda F, g, out, x, index: (F.apply("index_adjoint", g, x, index=index),),
            jvp=lambda F, t, out, x, index: F.apply("getitem", t[0], index=index),
            doc="basic indexing (ints, slices, None) as a view"))


def _index_adjoint_impl(g, like, index):
    out = np.zeros(np.shape(like), dtype=np.asarray(g).dtype)
    out[_as_numpy_index(index)] = g
    return out


register(Op(name="index_adjoint", kind="structure", arity=2, impl=_index_adjoint_impl,
            shape=lambda shapes, meet, index: tuple(shapes[1]),
            dtype=lambda dtypes, **_: dtypes[0], params=("index",), shape_only=(1,), public=False,
            lowering=Code(lambda t, args, node, shape: [
                f"{t} = np.zeros({shape}, dtype=np.{node.dtype.name})",
                f"{t}[{index_source(node.kwargs['index'])}] = {args[0]}"]),
            vjp=lambda F, g, out, x, like, index: (F.apply("getitem", g, index=index), None),
            jvp=lambda F, t, out, x, like, index: F.apply("index_adjoint", t[0], like,
                                                          index=index),
            doc="zeros of `like`'s shape with `g` written at `index`: getitem's adjoint"))


# Gathers along one axis: x is seen as (n, rest) with the gathered axis first.
_ROW = """
def _row(j, n):
    if j < 0:                       # negative indices wrap, as NumPy's
        j += n
    if j < 0 or j >= n:
        raise IndexError("gc.take: an index is out of range")
    return j
"""

_GATHER = """
def _gather_rows(x2, idx):
    out = np.empty((idx.size, x2.shape[1]), dtype=x2.dtype)
    for k in range(idx.size):
        j = _row(idx[k], x2.shape[0])
        for c in range(x2.shape[1]):
            out[k, c] = x2[j, c]
    return out
"""

_SCATTER_ADD = """
def _scatter_add_rows(g2, idx, n):
    out = np.zeros((n, g2.shape[1]), dtype=g2.dtype)
    for k in range(idx.size):
        j = _row(idx[k], n)
        for c in range(g2.shape[1]):
            out[j, c] += g2[k, c]
    return out
"""


def _moved_first(ndim, axis):
    """The permutation that brings `axis` to the front, and its inverse."""
    perm = (axis,) + tuple(i for i in range(ndim) if i != axis)
    return perm, tuple(int(i) for i in np.argsort(perm))


def _take_impl(x, idx, axis):
    idx = np.asarray(idx)
    n = np.shape(x)[axis]
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise IndexError(f"gc.take: index {idx[(idx < -n) | (idx >= n)].flat[0]} is out of "
                         f"range for axis {axis} of size {n}")
    return np.take(x, idx, axis=axis)


def _take_shape(shapes, meet, axis):
    x, idx = shapes
    return tuple(x[:axis]) + tuple(idx) + tuple(x[axis + 1:])


def _take_lines(t, args, node, shape):
    (x, idx), axis = args, node.kwargs["axis"]
    ndim = node.args[0].ndim
    perm, _ = _moved_first(ndim, axis)
    lead = len(node.args[1].shape)
    out_perm = tuple(range(axis, axis + lead)) + tuple(range(axis)) + tuple(
        range(axis + lead, len(node.shape)))
    back = tuple(int(i) for i in np.argsort(out_perm))
    src, ids = f"_{t}_src", f"_{t}_idx"          # names no input can have
    moved = f"np.ascontiguousarray(np.transpose({x}, {perm}))" if axis else f"np.ascontiguousarray({x})"
    gathered_shape = "(" + ", ".join([f"{ids}.shape[{i}]" for i in range(lead)] + [
        f"{src}.shape[{i}]" for i in range(1, ndim)]) + ",)"
    lines = [f"{src} = {moved}",
             f"{ids} = np.ascontiguousarray({idx}).astype(np.int64)",
             (f"{t} = _gather_rows({src}.reshape(({src}.shape[0], -1)), {ids}.reshape(-1))"
              f".reshape({gathered_shape})")]
    if back != tuple(range(len(back))):
        lines.append(f"{t} = np.transpose({t}, {back})")
    return lines


register(Op(name="take", kind="structure", arity=2, impl=_take_impl, shape=_take_shape,
            dtype=lambda dtypes, **_: dtypes[0], params=("axis",),
            lowering=Code(_take_lines, helpers=(_ROW, _GATHER)),
            vjp=lambda F, g, out, x, idx, axis: (F.apply("take_adjoint", g, idx, x, axis=axis),
                                                None),
            jvp=lambda F, t, out, x, idx, axis: F.apply("take", t[0], idx, axis=axis),
            doc=("x gathered at integer indices along `axis` (negative ones wrap); an index "
                 "out of range is an IndexError on every backend")))


def _take_adjoint_impl(g, idx, like, axis):
    out = np.zeros(np.shape(like), dtype=np.asarray(g).dtype)
    moved = np.moveaxis(out, axis, 0)
    idx = np.asarray(idx).reshape(-1)
    n = moved.shape[0]
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise IndexError(f"gc.take: an index is out of range for axis {axis} of size {n}")
    g_moved = np.moveaxis(np.asarray(g), tuple(range(axis, axis + np.ndim(g) - out.ndim + 1)),
                          tuple(range(np.ndim(g) - out.ndim + 1)))
    np.add.at(moved, idx, g_moved.reshape((idx.size,) + moved.shape[1:]))
    return out


def _take_adjoint_lines(t, args, node, shape):
    (g, idx, _), axis = args, node.kwargs["axis"]
    ndim = node.ndim
    lead = node.args[1].ndim
    g_perm = tuple(range(axis, axis + lead)) + tuple(range(axis)) + tuple(
        range(axis + lead, node.args[0].ndim))
    perm, back = _moved_first(ndim, axis)
    dims = shape.strip("(),").split(", ") if ndim else []
    moved_shape = "(" + ", ".join(dims[a] for a in perm) + ",)"
    grads, ids = f"_{t}_g", f"_{t}_idx"           # names no input can have
    lines = [f"{grads} = np.ascontiguousarray(np.transpose({g}, {g_perm}))",
             f"{ids} = np.ascontiguousarray({idx}).astype(np.int64).reshape(-1)",
             (f"{t} = _scatter_add_rows({grads}.reshape(({ids}.size, -1)), {ids}, "
              f"{dims[axis]}).reshape({moved_shape})")]
    if back != tuple(range(ndim)):
        lines.append(f"{t} = np.transpose({t}, {back})")
    return lines


register(Op(name="take_adjoint", kind="structure", arity=3, impl=_take_adjoint_impl,
            shape=lambda shapes, meet, axis: tuple(shapes[2]),
            dtype=lambda dtypes, **_: dtypes[0], params=("axis",), shape_only=(2,), public=False,
            lowering=Code(_take_adjoint_lines, helpers=(_ROW, _SCATTER_ADD)),
            vjp=lambda F, g, out, gg, idx, like, axis: (F.apply("take", g, idx, axis=axis),
                                                       None, None),
            jvp=lambda F, t, out, gg, idx, like, axis: F.apply("take_adjoint", t[0], idx, like,
                                                               axis=axis),
            doc=("take's adjoint: g scatter-added into zeros of `like`'s shape (duplicate "
                 "indices add up)")))


def _concatenate_shape(shapes, meet, axis):
    first = shapes[0]
    out = list(first)
    for s in shapes[1:]:
        if len(s) != len(first):
            raise ShapeError(f"concatenate: shapes {format_shape(first)} and {format_shape(s)} "
                             "have different ranks")
        message = (f"concatenate: shapes {format_shape(first)} and {format_shape(s)} differ "
                   f"off axis {axis}")
        for i, (a, b) in enumerate(zip(out, s)):
            if i != axis:
                out[i] = meet(a, b, lambda message=message: message)
    sizes = [s[axis] for s in shapes]
    if any(not isinstance(d, int) for d in sizes):
        raise ShapeError(f"concatenate: the sizes along axis {axis} must be known when the "
                         f"graph is built, got {[format_shape(s) for s in shapes]}")
    out[axis] = sum(sizes)
    return tuple(out)


def _concatenate_lines(t, args, node, shape):
    axis = node.kwargs["axis"]
    lines = [f"{t} = np.empty({shape}, dtype=np.{node.dtype.name})"]
    start = 0
    for a, v in zip(node.args, args):
        stop = start + a.shape[axis]
        index = ", ".join([":"] * axis + [f"{start}:{stop}"])
        lines.append(f"{t}[{index}] = {v}")
        start = stop
    return lines


def _concatenate_vjp(F, g, out, *xs, axis):
    pieces, start = [], 0
    for x in xs:
        stop = start + x.shape[axis]
        index = tuple([("full",)] * axis + [("slice", start, stop, 1, stop - start)])
        pieces.append(F.apply("getitem", g, index=index))
        start = stop
    return tuple(pieces)


def _concatenate_jvp(F, tangents, out, *xs, axis):
    filled = [t if t is not None else F.zeros_like(x) for t, x in zip(tangents, xs)]
    return F.apply("concatenate", *filled, axis=axis)


register(Op(name="concatenate", kind="structure", arity=-1,
            impl=lambda *xs, axis: np.concatenate(xs, axis=axis), shape=_concatenate_shape,
            params=("axis",), lowering=Code(_concatenate_lines),
            vjp=_concatenate_vjp, jvp=_concatenate_jvp,
            doc="arrays joined along an existing axis (whose sizes are static)"))
