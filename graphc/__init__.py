"""graphc: symbolic graphs compiled to fast gradient code.

The public API is documented in README.md; everything a user calls is importable from
this package (``import graphc as gc``)."""

from . import api, tape  # noqa: F401 - tape is public (gc.tape)
from . import nn, random  # noqa: F401 - gc.nn (layers, dropout), gc.random (counter-based)
from . import linalg  # noqa: F401 - gc.linalg (cholesky, solve, ..., eigh)
from .api import *  # noqa: F403 - the functions users call: exactly api.__all__
from .autodiff import grad, hessian, jacobian, jvp, value_and_grad, vjp
from .conv import avg_pool2d, conv1d, conv2d, max_pool2d
from .custom import custom_op
from .function import Function, compile, export
from .graph import Expr, const, matrix, scalar, tensor, vector
from .interpreter import evaluate
from .loops import fori_loop, scan
from .shapes import ShapeError
from .symbolic import elementwise, latex, to_sympy
from .version import __version__  # noqa: F401 - the package version
from .viz import check_grad, explain, gradient_report, render_dot, to_dot, trace

__all__ = [  # noqa: PLE0604 - api.__all__ is the one list of its functions
    *api.__all__,
    "Expr", "Function", "ShapeError", "avg_pool2d", "check_grad", "compile", "const", "conv1d",
    "conv2d", "custom_op", "max_pool2d",
    "elementwise", "evaluate", "explain", "export", "fori_loop", "grad", "gradient_report", "hessian",
    "jacobian", "jvp", "latex", "linalg", "matrix", "nn", "random", "render_dot", "scalar", "scan", "tape",
    "tensor", "to_dot", "to_sympy", "trace", "value_and_grad", "vector", "vjp",
]
