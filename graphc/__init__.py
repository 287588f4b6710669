"""graphc: symbolic graphs compiled to fast gradient code.

The public API is documented in README.md; everything a user calls is importable from
this package (``import graphc as gc``)."""

from .api import (abs, add, astype, broadcast_like, broadcast_to, cos, cross_entropy, div,
                  equal, exp, expand_dims, greater, greater_equal, less, less_equal, log,
                  log1p, log_softmax, logsumexp, matmul, max, maximum, mean, min, minimum,
                  mse, mul, neg, numel, pow, relu, reshape, sigmoid, sign, sin, softmax,
                  softplus, sqrt, square, sub, sum, tanh, transpose, where)
from .autodiff import grad, jvp
from .graph import Expr, const, matrix, scalar, tensor, vector
from .function import Function, compile, export
from .interpreter import evaluate
from .shapes import ShapeError
from .symbolic import elementwise, latex, to_sympy
from .viz import check_grad, explain, gradient_report, render_dot, to_dot, trace
from . import tape

__version__ = "0.1.0"

__all__ = [
    "abs", "add", "astype", "broadcast_like", "broadcast_to", "cos", "cross_entropy", "div",
    "equal", "exp", "expand_dims", "greater", "greater_equal", "less", "less_equal", "log",
    "log1p", "log_softmax", "logsumexp", "matmul", "max", "maximum", "mean", "min", "minimum",
    "mse", "mul", "neg", "numel", "pow", "relu", "reshape", "sigmoid", "sign", "sin", "softmax",
    "softplus", "sqrt", "square", "sub", "sum", "tanh", "transpose", "where",
    "grad", "jvp", "Expr", "const", "matrix", "scalar", "tensor", "vector",
    "Function", "compile", "export", "evaluate", "ShapeError", "elementwise", "latex",
    "to_sympy", "check_grad", "explain", "gradient_report", "render_dot", "to_dot", "trace",
    "tape",
]
