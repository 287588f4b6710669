"""``graphc explain`` and ``graphc trace``: quick looks at an expression from the shell.

Expressions are parsed with Python's ``ast`` and only names, numbers, arithmetic and
calls of graphc's elementwise functions are accepted: nothing is evaluated as code."""

from __future__ import annotations

import ast

import numpy as np

from . import api
from .graph import scalar
from .ops import OPS


def _numeric_functions():
    """The op table's elementwise functions of one or two numbers that return a number
    (not the comparisons, not ``where``, not ``astype``): what an expression may call."""
    return {name: getattr(api, name) for name, op in OPS.items()
            if name in api.__all__ and op.kind == "elementwise" and op.arity <= 2
            and not op.params and _maps_floats_to_floats(op)}


def _maps_floats_to_floats(op):
    f64 = np.dtype(np.float64)
    try:
        return op.dtype([f64] * op.arity) == f64
    except TypeError:           # bitwise ops refuse floats
        return False


FUNCTIONS = _numeric_functions()
_BINARY = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b,
           ast.Mult: lambda a, b: a * b, ast.Div: lambda a, b: a / b,
           ast.Pow: lambda a, b: a ** b}


class ExpressionError(ValueError):
    """Text that is not an expression graphc accepts on the command line."""


def parse_expression(text):
    """(expression, {name: input}) for text such as "(x + y) * z" or "sigmoid(w*a + b)"."""
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"cannot parse {text!r}: {exc.msg}") from None
    inputs = {}

    def build(node):
        if isinstance(node, ast.Expression):
            return build(node.body)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return _BINARY[type(node.op)](build(node.left), build(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            value = build(node.operand)
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
                and not isinstance(node.value, bool):
            return float(node.value)
        if isinstance(node, ast.Name) and node.id not in FUNCTIONS:
            if node.id.startswith("_"):
                raise ExpressionError(f"names may not start with '_': {node.id!r}")
            return inputs.setdefault(node.id, scalar(node.id))
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in FUNCTIONS and not node.keywords):
            return FUNCTIONS[node.func.id](*[build(a) for a in node.args])
        raise ExpressionError(f"unsupported in an expression: {ast.unparse(node)!r} "
                              f"(use numbers, names, + - * / **, and {sorted(FUNCTIONS)})")
    expr = build(tree)
    if not hasattr(expr, "op"):
        raise ExpressionError(f"{text!r} has no variables")
    return expr, inputs


def parse_point(text, inputs):
    """{input: value} from "x=1,y=2" (every variable needs a value)."""
    values = {}
    for part in filter(None, (text or "").split(",")):
        name, sep, value = part.partition("=")
        if not sep:
            raise ExpressionError(f"--at expects name=value pairs, got {part!r}")
        name = name.strip()
        if name not in inputs:
            raise ExpressionError(f"--at names {name!r}, which is not in the expression "
                                  f"(variables: {sorted(inputs)})")
        try:
            values[inputs[name]] = float(value)
        except ValueError:
            raise ExpressionError(f"--at {name}: {value!r} is not a number") from None
    missing = sorted(set(inputs) - {x.name for x in values})
    if missing:
        raise ExpressionError(f"--at needs a value for {missing}")
    return values


def add_commands(sub):
    explain = sub.add_parser("explain", help="the chain-rule factors of a derivative")
    explain.add_argument("expression")
    explain.add_argument("--wrt", required=True, help="the variable to differentiate by")
    explain.add_argument("--at", help="a point, e.g. x=1,y=2")
    trace = sub.add_parser("trace", help="the forward and backward tables at a point")
    trace.add_argument("expression")
    trace.add_argument("--at", required=True, help="a point, e.g. x=-2,y=5,z=-4")
    trace.add_argument("--markdown", action="store_true")


def run_command(args):
    from .viz import explain, trace
    expr, inputs = parse_expression(args.expression)
    if args.command == "trace":
        result = trace(expr, parse_point(args.at, inputs))
        print(result.to_markdown() if args.markdown else result.to_text())
        return 0
    if args.wrt not in inputs:
        raise ExpressionError(f"--wrt {args.wrt!r} is not a variable of the expression "
                              f"(variables: {sorted(inputs)})")
    point = parse_point(args.at, inputs) if args.at else None
    result = explain(expr, inputs[args.wrt], at=point, names={expr: "f"})
    print(result.text)
    print(f"LaTeX: {result.latex}")
    return 0
