"""The SymPy bridge: new elementwise ops from SymPy formulas, derivatives by ``sympy.diff``.

SymPy is imported only when this module's functions are called, so ``import graphc``
stays fast for code that never needs it."""

from __future__ import annotations

import functools
import inspect

import numpy as np

from . import graph as _graph
from .lowering import PerElement, View
from .ops import OPS, Op, _elementwise_shape, register


def _sympy():
    import sympy
    return sympy


def elementwise(name, fn):
    """A new elementwise op from a SymPy formula, e.g.
    ``softsign = gc.elementwise("softsign", lambda t: t / (1 + sympy.Abs(t)))``.

    The op joins the op table: it works in graphs, on the tape and in compiled code,
    and its derivatives (of any order) are derived with ``sympy.diff`` once per op and
    argument, then cached.  Returns the function that applies the op."""
    sp = _sympy()
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"elementwise: the op name must be an identifier, got {name!r}")
    params = [p for p in inspect.signature(fn).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if not params:
        raise TypeError(f"elementwise {name!r}: the formula must take at least one argument")
    symbols = sp.symbols(f"x0:{len(params)}", real=True)
    try:
        expr = sp.sympify(fn(*symbols))
    except Exception as exc:
        raise TypeError(f"elementwise {name!r}: the formula could not be evaluated on SymPy "
                        f"symbols: {exc}") from exc
    existing = OPS.get(name)
    if existing is not None:
        if getattr(existing, "formula", None) != (symbols, expr):
            raise ValueError(f"elementwise: an op named {name!r} already exists with another "
                             "definition; choose another name")
    else:
        register(_formula_op(name, symbols, expr))

    from .api import _apply

    def apply_op(*args):
        if len(args) != len(symbols):
            raise TypeError(f"{name}() takes {len(symbols)} arguments, got {len(args)}")
        return _apply(name, *args)
    apply_op.__name__ = apply_op.__qualname__ = name
    apply_op.__doc__ = f"Elementwise {name}(x) = {expr} (defined with gc.elementwise)."
    return apply_op


class FormulaOp(Op):
    """An elementwise op defined by a SymPy formula (``formula = (symbols, expr)``)."""

    formula: tuple = ()

    @property
    def fingerprint(self):
        return str(self.formula[1])


def _formula_op(name, symbols, expr):
    sp = _sympy()
    try:
        numeric = sp.lambdify(symbols, expr, modules="numpy")
    except Exception as exc:        # SymPy's printers raise many kinds of error
        raise TypeError(f"elementwise {name!r}: the formula {expr} cannot be turned into "
                        f"NumPy code: {exc}") from exc

    def impl(*args):
        with np.errstate(all="ignore"):
            value = numeric(*args)
        dtype = np.result_type(*[np.asarray(a).dtype for a in args])
        return np.broadcast_to(np.asarray(value, dtype=dtype),
                               np.broadcast_shapes(*[np.shape(a) for a in args]))

    partials = tuple(_partial_rule(name, symbols, expr, i) for i in range(len(symbols)))
    op = FormulaOp(name=name, kind="elementwise", arity=len(symbols), impl=impl,
                   shape=_elementwise_shape(name), lowering=PerElement(),
                   sym=lambda sp_, *xs: expr.subs(dict(zip(symbols, xs)), simultaneous=True),
                   partials=partials, doc=f"{name}: {expr}")
    object.__setattr__(op, "formula", (symbols, expr))
    return op


def derivative(expr, symbol, name="formula"):
    """``sympy.diff``, as a derivative that holds almost everywhere: distributional
    parts (DiracDelta, from sign or Heaviside) are dropped, the step functions floor and
    ceiling have derivative 0, and ``Mod(a, b)`` is differentiated as
    ``a - b*floor(a/b)``, i.e. (1, -floor(a/b)).  SymPy leaves those unevaluated; a
    derivative it still cannot express is a ``TypeError`` naming the op."""
    sp = _sympy()
    steps = (sp.floor, sp.ceiling)
    expr = expr.replace(sp.Mod, lambda a, b: a - b * sp.floor(a / b))
    with_steps_frozen = expr.replace(
        lambda e: isinstance(e, steps),
        lambda e: sp.Function(f"STEP_{type(e).__name__}")(*e.args))
    d = sp.diff(with_steps_frozen, symbol)
    d = d.replace(lambda e: isinstance(e, sp.Derivative)
                  and e.expr.func.__name__.startswith("STEP_"), lambda e: sp.S.Zero)
    d = d.replace(lambda e: isinstance(e, sp.Subs), lambda e: e.doit())
    d = d.replace(lambda e: isinstance(e, sp.core.function.AppliedUndef)
                  and e.func.__name__.startswith("STEP_"),
                  lambda e: getattr(sp, e.func.__name__[len("STEP_"):])(*e.args))
    d = d.replace(sp.DiracDelta, lambda *args: sp.S.Zero)
    if d.has(sp.Derivative, sp.Subs):
        raise TypeError(f"elementwise {name!r}: SymPy cannot express the derivative of "
                        f"{expr} with respect to {symbol}: {d}")
    return d


def _partial_rule(name, symbols, expr, i):
    """The rule for d op / d arg i: an op of its own, derived on first use."""
    @functools.cache
    def derivative_op():
        d_name = f"{name}__d{i}"
        if d_name not in OPS:
            register(_formula_op(d_name, symbols, derivative(expr, symbols[i], name)))
        return d_name

    def rule(F, out, *args):
        return F.apply(derivative_op(), *args)
    return rule


def _transparent(op):
    """Ops that only move or stretch values: in a formula they are their argument."""
    lowering = op.lowering
    return ((isinstance(lowering, PerElement) and lowering.identity)
            or (isinstance(lowering, View) and lowering.transparent))


def to_sympy(expr, names=None, shared=False):
    """A graph as a SymPy expression, so the math graphc computes can be read.

    Inputs become symbols named after them; ``names={node: "a_3"}`` turns any other
    node into a symbol too (say, the forward activations of a network, so a gradient
    reads as the lesson writes it).  Elementwise ops use their SymPy form from the op
    table; reductions and matrix products appear as undefined functions (``sum(x)``).
    With ``shared=True`` returns ``(definitions, expression)`` from ``sympy.cse``: each
    repeated subexpression named once."""
    sp = _sympy()
    from .graph import Expr, toposort
    if not isinstance(expr, Expr):
        raise TypeError(f"to_sympy: expected an expression, got {type(expr).__name__}")
    names = dict(names or {})
    values = {}
    for node in toposort([expr]):
        if node in names:
            values[node] = sp.Symbol(names[node], real=True)
        elif node.is_input:
            values[node] = sp.Symbol(node.name, real=True)
        elif node.is_const:
            values[node] = (sp.nsimplify(float(node.value)) if node.shape == ()
                            else sp.Symbol(f"const{list(node.shape)}"))
        elif _transparent(OPS[node.op]):
            values[node] = values[node.args[0]]
        else:
            op = OPS[node.op]
            args = [values[a] for a in node.args]
            if op.sym is not None:
                values[node] = op.sym(sp, *args)
            else:
                values[node] = sp.Function(node.op)(*args)
    result = values[expr]
    if shared:
        definitions, (reduced,) = sp.cse(result, order="none")
        return definitions, reduced
    return result


def latex(expr, names=None):
    """LaTeX for `expr` (see ``to_sympy``)."""
    return _sympy().latex(to_sympy(expr, names))


#: An expression is shown as a formula in a notebook (``Expr._repr_latex_``) only while
#: its formula, written out as a tree (a shared subexpression counted once per use), has
#: at most LATEX_MAX_TERMS nodes and its LaTeX at most LATEX_MAX_CHARS characters;
#: beyond, one line says what it is.  (A DAG's tree can be exponentially larger than the
#: graph, so the tree size is counted before SymPy sees anything.)
LATEX_MAX_TERMS, LATEX_MAX_CHARS = 300, 4000


def _tree_size(expr, cap):
    """The number of nodes of `expr` written out as a tree, or cap + 1 if larger."""
    from .graph import toposort
    size = {}
    for node in toposort([expr]):
        size[node] = min(cap + 1, 1 + sum(size[a] for a in node.args))
    return size[expr]



def _text(s):
    """`s` inside LaTeX's \\text{...}."""
    for ch, rep in (("\\", r"\textbackslash "), ("_", r"\_"), ("{", r"\{"), ("}", r"\}"),
                    ("#", r"\#"), ("%", r"\%"), ("&", r"\&"), ("$", r"\$"), ("^", r"\^{}"),
                    ("~", r"\~{}")):
        s = s.replace(ch, rep)
    return rf"\text{{{s}}}"


def latex_repr(expr):
    """What a notebook shows for `expr`: ``$formula$`` (see ``latex``), or, for a formula
    too large to read (LATEX_MAX_TERMS, LATEX_MAX_CHARS), a one-line summary - the
    op, the number of graph nodes, the dtype and shape.  None if the formula cannot be
    built (the notebook then shows the text repr)."""
    from .graph import toposort
    from .shapes import format_shape
    try:
        if _tree_size(expr, LATEX_MAX_TERMS) <= LATEX_MAX_TERMS:
            text = latex(expr)
            if len(text) <= LATEX_MAX_CHARS:
                return f"${text}$"
        nodes = len(toposort([expr]))
        return "$" + _text(f"{expr.op}(...): a graph of {nodes:,} nodes, "
                           f"{expr.dtype} {format_shape(expr.shape)}") + "$"
    except Exception:       # a display hook must not raise
        return None


_graph.DISPLAY_HOOKS["latex"] = latex_repr
