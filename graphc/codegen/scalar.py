"""Scalar code for elementwise ops: one Numba expression per node.

Built-in ops carry a code template in the op table; ops made from a SymPy formula
(``gc.elementwise``) are printed from their formula once and the template cached."""

from __future__ import annotations

import functools

from ..ops import OPS


@functools.cache
def template(op_name):
    """The op's scalar template, with ``{0}``, ``{1}`` ... standing for its arguments."""
    op = OPS[op_name]
    if op.code is not None:
        return op.code
    return _template_from_formula(op)


def _template_from_formula(op):
    import sympy
    from sympy.printing.numpy import PythonCodePrinter

    symbols, expr = op.formula
    placeholders = sympy.symbols(f"ARGPLACEHOLDER0:{len(symbols)}", real=True)
    expr = expr.subs(dict(zip(symbols, placeholders)), simultaneous=True)
    printer = PythonCodePrinter({"fully_qualified_modules": True, "strict": False})
    code = printer.doprint(expr).replace("{", "{{").replace("}", "}}")
    for i in reversed(range(len(symbols))):
        code = code.replace(f"ARGPLACEHOLDER{i}", f"{{{i}}}")
    return f"({code})"


def scalar_code(node, arg_names):
    """The expression computing `node` from scalar variables named `arg_names`."""
    return template(node.op).format(*arg_names)
