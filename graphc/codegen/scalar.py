"""Scalar code for elementwise ops: one Numba expression per node.

Built-in ops carry a code template (and, where they branch, a helper function) in the
op table.  Ops made from a SymPy formula (``gc.elementwise``, and the derivative ops
``sympy.diff`` makes for them) are turned into a helper function here, which is where
SymPy pays: the formula is simplified when that is cheap to try and the cost model says
the result is cheaper, and its repeated subexpressions are computed once (``cse``)."""

from __future__ import annotations

import functools

from ..ops import OPS

#: Try ``sympy.simplify`` only on formulas up to this many operations: it can take
#: seconds, or much longer, on big expressions.
SIMPLIFY_BUDGET = 40

#: Relative costs of scalar operations (an add or a multiply costs 1).
COSTS = {"ADD": 1, "SUB": 1, "MUL": 1, "NEG": 1, "DIV": 4, "POW": 8, "EXP": 20, "LOG": 20,
         "SIN": 20, "COS": 20, "TANH": 20, "SQRT": 6, "ABS": 1, "SIGN": 2}


@functools.cache
def template(op_name):
    """The op's scalar template, with ``{0}``, ``{1}`` ... standing for its arguments."""
    op = OPS[op_name]
    if op.code is not None:
        return op.code
    return f"_f_{op_name}(" + ", ".join(f"{{{i}}}" for i in range(op.arity)) + ")"


@functools.cache
def helper(op_name):
    """The source of the helper function the op's template calls, or None."""
    op = OPS[op_name]
    formula = getattr(op, "formula", None)
    return formula_helper(op_name, *formula) if formula else op.helper


def scalar_code(node, arg_names):
    """The expression computing `node` from scalar variables named `arg_names`."""
    return template(node.op).format(*arg_names)


def cost(expr):
    """The cost model: weighted operation count (transcendentals and division dear)."""
    import sympy
    visual = sympy.count_ops(expr, visual=True)
    return float(visual.subs({sympy.Symbol(k): v for k, v in COSTS.items()})
                 .subs({s: 10 for s in visual.free_symbols}))


def cheapest_form(expr):
    """`expr`, or its simplification when that is cheaper by the cost model."""
    import sympy
    if sympy.count_ops(expr) > SIMPLIFY_BUDGET:
        return expr
    simpler = sympy.simplify(expr)
    return simpler if cost(simpler) < cost(expr) else expr


def formula_helper(name, symbols, expr):
    """A helper function computing a SymPy formula, one statement per common
    subexpression, printed as Numba-compatible Python."""
    import sympy
    from sympy.printing.pycode import PythonCodePrinter

    printer = PythonCodePrinter({"fully_qualified_modules": True, "strict": False})
    args = sympy.symbols(f"a0:{len(symbols)}", real=True)
    body = cheapest_form(expr.subs(dict(zip(symbols, args)), simultaneous=True))
    temps, (result,) = sympy.cse(body, symbols=sympy.numbered_symbols("t"), order="none")
    lines = [f"def _f_{name}({', '.join(map(str, args))}):",
             f'    """{name} = {expr}"""']
    lines += [f"    {t} = {printer.doprint(e)}" for t, e in temps]
    lines.append(f"    return {printer.doprint(result)}")
    return "\n" + "\n".join(lines) + "\n"
