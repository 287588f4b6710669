"""Scalar code for elementwise ops: one Numba expression per node.

Built-in ops carry a code template (and, where they branch, a helper function) in the
op table.  Ops made from a SymPy formula (``gc.elementwise``, and the derivative ops
``sympy.diff`` makes for them) are turned into a helper function here, which is where
SymPy pays: the formula is simplified when that is cheap to try and the cost model says
the result is cheaper, and its repeated subexpressions are computed once (``cse``)."""

from __future__ import annotations

import functools
import signal
import threading

import numpy as np

from ..ops import OPS

#: Try ``sympy.simplify`` only on formulas up to this many operations, and give it at
#: most this many seconds: it can take much longer on big expressions.
SIMPLIFY_BUDGET = 40
SIMPLIFY_SECONDS = 2.0

#: Relative costs of scalar operations (an add or a multiply costs 1).
COSTS = {"Add": 1, "Mul": 1, "Abs": 1, "Max": 2, "Min": 2, "Piecewise": 2, "sign": 2,
         "Equality": 1, "Unequality": 1, "StrictGreaterThan": 1, "GreaterThan": 1,
         "StrictLessThan": 1, "LessThan": 1, "ExprCondPair": 0, "BooleanTrue": 0,
         "sqrt": 6, "exp": 20, "log": 20, "log1p": 20, "sin": 20, "cos": 20, "tanh": 20}
DIVISION, POWER, OPAQUE = 4, 8, 10


@functools.cache
def template(op_name, in_loop=True):
    """The op's scalar template, with ``{0}``, ``{1}`` ... standing for its arguments:
    the one for fused loops, or (``in_loop=False``) for statements outside loops when
    the op has one of its own (``PerElement.scalar``)."""
    op = OPS[op_name]
    if not in_loop and op.lowering.scalar is not None:
        return op.lowering.scalar
    if op.lowering.code is not None:
        return op.lowering.code
    if getattr(op, "formula", None) is None:
        raise NotImplementedError(f"graphc cannot compile op {op_name!r}: it is computed "
                                  "per element but has no scalar code in the op table")
    return f"_f_{op_name}(" + ", ".join(f"{{{i}}}" for i in range(op.arity)) + ")"


@functools.cache
def helper(op_name):
    """The source of the helper function the op's template calls, or None."""
    op = OPS[op_name]
    formula = getattr(op, "formula", None)
    return formula_helper(op_name, *formula) if formula else op.lowering.helper


def scalar_code(node, arg_names, in_loop=True):
    """The expression computing `node` from scalar variables named `arg_names`
    (``{dtype}`` in a template is the node's dtype: astype's ``np.{dtype}({0})``)."""
    return op_code(node.op, node.dtype, arg_names, in_loop)


def op_code(op_name, dtype, arg_names, in_loop=True):
    """The op's template applied to `arg_names`, for a result of `dtype`.  A helper
    function (``_relu``, ``_sign``, one made from a SymPy formula) is written once for
    every dtype, with Python float literals, so it returns float64 for a float32
    argument; such a call is converted back to the node's float dtype, so that the
    arithmetic that follows stays float32 (relu, sign, maximum and where only select:
    the conversion is exact)."""
    code = template(op_name, in_loop).format(*arg_names, dtype=dtype.name)
    lowering = OPS[op_name].lowering
    computes_in_float64 = (lowering.helper is not None or lowering.code is None
                           or (not in_loop and lowering.scalar is not None))   # libm
    if dtype.kind == "f" and dtype != np.float64 and computes_in_float64:
        return f"np.{dtype.name}({code})"
    return code


def cost(expr):
    """The cost model: a weighted count of operations (transcendentals and division
    dear, add and multiply cheap; an opaque helper call 10), in one walk of the tree."""
    import sympy
    total = 0
    for node in sympy.preorder_traversal(expr):
        if node.is_Atom:
            continue
        name = type(node).__name__
        if node.is_Add or node.is_Mul:
            total += COSTS[name] * (len(node.args) - 1)
        elif node.is_Pow:
            n = node.exp
            if n.is_Integer and 0 < abs(int(n)) <= 8:      # repeated multiplication
                total += abs(int(n)) - 1 + (DIVISION if n < 0 else 0)
            else:
                total += POWER
        else:
            total += COSTS.get(name, OPAQUE)
    return total


class _OutOfTime(Exception):
    pass


def _within(seconds, fn):
    """fn(), or None if it takes longer than `seconds` (a SIGALRM timer, so only in the
    main thread of a Unix process; elsewhere None at once: no unbounded work)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(
            signal, "setitimer"):
        return None

    def out_of_time(signum, frame):
        raise _OutOfTime
    previous = signal.signal(signal.SIGALRM, out_of_time)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn()
    except _OutOfTime:
        return None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def cheapest_form(expr):
    """`expr`, or its simplification when that is cheaper by the cost model (tried only
    within the operation-count and time budgets)."""
    import sympy
    if sympy.count_ops(expr) > SIMPLIFY_BUDGET:
        return expr
    try:
        simpler = _within(SIMPLIFY_SECONDS, lambda: sympy.simplify(expr))
    except Exception:           # noqa: BLE001 - a failed simplification is no gain
        return expr
    return simpler if simpler is not None and cost(simpler) < cost(expr) else expr


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
