"""SymPy on fused loop bodies (``optimize="full"``).

A fused loop computes several elementwise nodes per index.  Here the nodes a loop must
deliver (stored values and reduction inputs) are written as one SymPy system, in the
ops' numerically stable code forms (``code_sym`` in the op table: so sigmoid and softplus
of the same argument share ``exp(-|x|)``), their common subexpressions are computed once (``sympy.cse`` with
``order="none"``), and the result is kept only when the cost model says it is cheaper
and no input cancelled out (SymPy would turn ``x - x`` into 0, which is wrong for
inf and NaN).  Ops whose SymPy form is not safe to print as code (NaN handling of
max/min/sign) stay opaque: they are printed with their own templates.

Expressions are built with ``sympy.evaluate(False)``, so SymPy rewrites nothing on its
own; only ``cse`` restructures them."""

from __future__ import annotations

import functools

from ..ops import OPS
from .scalar import cost, op_code, template
from .schedule import value_args

#: Loops with more members than this are left as they are (cse is superlinear).
MAX_MEMBERS = 60


@functools.cache
def _sympy():
    import sympy
    return sympy


def _symbolic(node, args):
    """The node as SymPy: its op's code form from the op table, or an opaque call."""
    sp = _sympy()
    if OPS[node.op].lowering.identity:          # astype, broadcasts
        return args[0]
    code_sym = OPS[node.op].lowering.code_sym
    if code_sym is not None:
        return code_sym(sp, *args)
    return sp.Function(f"OPAQUE{node.dtype.name}_{node.op}")(*args)


def _printer(number=None):
    """The printer of loop bodies.  With `number` (value -> source text), numbers are
    printed through it: a float32 loop's constants are float32 locals (``c0``), never
    Python literals, which would promote the arithmetic to float64; integer powers stay
    integer (``x**2``, and ``1/x``, not ``x**-1``)."""
    import numpy as np
    from sympy.printing.precedence import precedence
    from sympy.printing.pycode import PythonCodePrinter

    class LoopPrinter(PythonCodePrinter):
        def _print_Symbol(self, expr):
            """Symbols stand for source the emitter wrote (``e12``, ``False``): print them
            as they are (SymPy would rename a keyword to ``False_``)."""
            return expr.name

        def _print_Function(self, expr):
            name = type(expr).__name__
            if name.startswith("OPAQUE"):
                dtype, op = name[len("OPAQUE"):].split("_", 1)
                return op_code(op, np.dtype(dtype), [self._print(a) for a in expr.args])
            return super()._print_Function(expr)

        def _print_Pow(self, expr, rational=False):
            base, n = expr.args
            if not n.is_Integer:
                return super()._print_Pow(expr, rational)
            n = int(n)
            b = self.parenthesize(base, precedence(expr), strict=False)
            if n == 0:
                return self._print_Number_typed(1)
            power = b if abs(n) == 1 else f"{b}**{abs(n)}"
            return power if n > 0 else f"({self._print_Number_typed(1)}/{power})"

        def _print_Number_typed(self, value):
            return number(value) if number is not None else repr(float(value))

        if number is not None:
            def _print_Integer(self, expr):
                return number(float(expr))

            _print_Rational = _print_Float = _print_Integer
            _print_One = _print_Zero = _print_Half = _print_NegativeOne = _print_Integer

        def _print_Max(self, expr):            # NaN-propagating, as the ops are
            a, b = (self._print(x) for x in expr.args)
            return f"_maximum({a}, {b})"

    for name in _SAME_NAME_OPS:     # the op's own template: the runtime's vectorisable code
        setattr(LoopPrinter, f"_print_{name}", _op_printer(name))
    return LoopPrinter({"fully_qualified_modules": True, "strict": False})


#: SymPy functions printed with the template of the op of the same name.
_SAME_NAME_OPS = ("exp", "log", "log1p", "sin", "cos", "tanh")


def _op_printer(name):
    def print_call(self, expr):
        return template(name).format(*[self._print(a) for a in expr.args])
    return print_call


def optimized_body(loop, needed, arg_code, number=None):
    """Lines computing the `needed` members of `loop`, or None to keep the plain body.

    `arg_code(node)` gives the scalar variable holding an argument from outside the
    loop (emitting its load); `number(value)`, if given, the source text of a numeric
    constant of the loop's dtype.  Returns (lines, {member: variable}).  SymPy is an
    optimisation here, never a requirement: if it fails in any way (unevaluated
    expressions reach corners of SymPy that raise, e.g. ZeroDivisionError inside
    ``as_numer_denom``), the plain body is used."""
    if len(loop.members) > MAX_MEMBERS or not needed:
        return None
    try:
        return _cse_body(loop, needed, arg_code, number)
    except Exception:           # noqa: BLE001 - any SymPy failure means "no gain"
        return None


def _cse_body(loop, needed, arg_code, number):
    sp = _sympy()
    members = set(loop.members)
    symbol_of, expr_of, plain_cost = {}, {}, 0.0
    with sp.evaluate(False):
        for m in loop.members:
            args = []
            for a in value_args(m):
                if a in members:
                    args.append(expr_of[a])
                else:
                    if a not in symbol_of:
                        symbol_of[a] = sp.Symbol(arg_code(a), real=True)
                    args.append(symbol_of[a])
            expr_of[m] = _symbolic(m, args)
            plain_cost += cost(_symbolic(m, [sp.Symbol(f"z{i}") for i in range(len(args))]))
        temps, outs = sp.cse([expr_of[m] for m in needed], symbols=sp.numbered_symbols("s"),
                             order="none")
    new_cost = sum(cost(e) for _, e in temps) + sum(cost(e) for e in outs)
    used = set().union(*[e.free_symbols for _, e in temps], *[e.free_symbols for e in outs])
    inputs = {s for m in needed for s in expr_of[m].free_symbols}
    if new_cost >= plain_cost or not inputs <= used | {t for t, _ in temps}:
        return None
    printer = _printer(number)
    lines = [f"{t} = {printer.doprint(e)}" for t, e in temps]
    return lines, dict(zip(needed, (printer.doprint(e) for e in outs)))
