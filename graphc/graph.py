"""Expression graphs: hash-consed ``Expr`` nodes, inputs, constants and operators.

Building the same subexpression twice returns the same node (hash-consing), so common
subexpressions are shared from the start and forward and backward graphs reuse each
other's nodes.  Shapes and dtypes are inferred as a node is built, using the op
table's rules, so a shape error surfaces at the line that caused it.
"""

from __future__ import annotations

import itertools
import numbers
import weakref

import numpy as np

from .operators import OperatorMixin
from .ops import OPS
from .shapes import ShapeError, check_shape_arg, format_shape, static_meet

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
#: Inputs may also hold integers and booleans (labels, indices, masks): never
#: differentiated.
INPUT_DTYPES = FLOAT_DTYPES + (np.dtype(np.int32), np.dtype(np.int64), np.dtype(np.bool_))
_CONST_INTERN_MAX = 64          # constants up to this many elements are hash-consed
_interned: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
_input_ids = itertools.count()
#: Notebook display functions, registered by the modules that define them.
DISPLAY_HOOKS: dict = {}


class Expr(OperatorMixin):
    """A node of the graph: an op applied to argument nodes, with static parameters.

    ``shape`` is a tuple of ints and ``None`` (dynamic), ``dtype`` a ``numpy.dtype``.
    Identity is equality: ``==`` is not overloaded, so nodes work as dict keys."""

    __slots__ = ("__weakref__", "args", "dtype", "name", "op", "params", "shape", "value")

    def __init__(self, op, args, params, shape, dtype, name=None, value=None):
        self.op, self.args, self.params = op, args, params
        self.shape, self.dtype, self.name, self.value = shape, dtype, name, value

    @property
    def kwargs(self):
        return dict(self.params)

    @property
    def is_input(self):
        return self.op == "input"

    @property
    def is_const(self):
        return self.op == "const"

    def __repr__(self):
        if self.is_input:
            return f"<input {self.name}: {self.dtype} {format_shape(self.shape)}>"
        if self.is_const:
            return f"<const {self.dtype} {format_shape(self.shape)}>"
        return f"<{self.op} {self.dtype} {format_shape(self.shape)}>"

    def _repr_latex_(self):
        """The formula, for notebooks (a summary line when it is too large to read):
        ``graphc.symbolic.latex_repr``, registered in DISPLAY_HOOKS (this module may not
        import it: symbolic needs the api, which needs this module)."""
        hook = DISPLAY_HOOKS.get("latex")
        return hook(self) if hook is not None else None

    def __bool__(self):
        raise TypeError("the truth value of a graphc expression is not known until it is "
                        "evaluated; use gc.where(cond, a, b) for a graph-level choice")


# ---------------------------------------------------------------------------------
# Leaves
# ---------------------------------------------------------------------------------

def _check_dtype(dtype, what, allowed=FLOAT_DTYPES):
    names = ", ".join(d.name for d in allowed)
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{what}: unknown dtype {dtype!r}; expected one of {names}") from None
    if dt not in allowed:
        raise TypeError(f"{what}: dtype {dt} is not supported; expected one of {names}")
    return dt


def tensor(name, shape=(), dtype="float64"):
    """A named input of the given shape (``None`` marks a size known only at call time)."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"input name must be a Python identifier, got {name!r}")
    shape = check_shape_arg(f"input {name!r}", shape)
    if any(d == -1 for d in shape):
        raise ValueError(f"input {name!r}: use None, not -1, for a dynamic dimension")
    dtype = _check_dtype(dtype, f"input {name!r}", INPUT_DTYPES)
    return Expr("input", (), (("id", next(_input_ids)),), shape, dtype, name=name)


def scalar(name, dtype="float64"):
    return tensor(name, (), dtype)


def vector(name, size=None, dtype="float64"):
    return tensor(name, (size,), dtype)


def matrix(name, shape=(None, None), dtype="float64"):
    if len(tuple(shape)) != 2:
        raise ValueError(f"matrix {name!r}: shape must have two dimensions, got {shape!r}")
    return tensor(name, shape, dtype)


def const(value, dtype=None):
    """A constant node.  Floats default to float64; integer and bool data become float64
    unless `dtype` asks for an integer or bool constant (indices, masks)."""
    if isinstance(value, Expr):
        raise TypeError("const() takes a number or an array, not an expression")
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"const: expected a real number or array, got {arr.dtype} data")
    if dtype is None:
        dtype = arr.dtype if arr.dtype in FLOAT_DTYPES else np.dtype(np.float64)
    dtype = _check_dtype(dtype, "const", INPUT_DTYPES)
    arr = np.array(arr, dtype=dtype)            # a private copy the caller cannot change
    arr.flags.writeable = False
    if arr.size <= _CONST_INTERN_MAX:
        key = ("const", dtype.str, arr.shape, arr.tobytes())
        node = _interned.get(key)
        if node is None:
            node = Expr("const", (), (), arr.shape, dtype, value=arr)
            _interned[key] = node
        return node
    return Expr("const", (), (), arr.shape, dtype, value=arr)


_weak_scalars: dict = {}     # (value, dtype) -> const node, for Python numbers in graphs


def _weak_scalar(value, dtype):
    key = (value, dtype.char)
    node = _weak_scalars.get(key)
    if node is None:
        if len(_weak_scalars) > 10_000:
            _weak_scalars.clear()
        node = _weak_scalars[key] = const(value, dtype)
    return node


def as_expr(value, like_dtype=None):
    """An argument of an op as a node.  Python numbers are *weakly typed*: they take the
    dtype of the other operands, so ``x32 * 2.0`` stays float32 (as in JAX and NumPy 2)."""
    if isinstance(value, Expr):
        return value
    weak = like_dtype if like_dtype is not None and like_dtype in FLOAT_DTYPES else None
    if type(value) in (float, int, bool):
        return _weak_scalar(value, _python_number_dtype(value, like_dtype))
    if isinstance(value, numbers.Real) and not isinstance(value, np.generic):
        return const(value, weak)
    if isinstance(value, (np.ndarray, np.generic, list, tuple)):
        return const(value)
    raise TypeError(f"cannot use {type(value).__name__} {value!r} in a graphc expression; "
                    "expected an expression, a number or a NumPy array")


_FLOAT64 = np.dtype(np.float64)


def _python_number_dtype(value, like):
    """The dtype of a Python number among operands of dtype `like` (NumPy 2's weak
    promotion): floats take a float operand's dtype, else float64; ints an integer or
    float operand's, else (bools, nothing) int64 beside bools and float64 alone; bools
    stay bool beside bools and integers, as numbers beside floats."""
    kind = like.kind if like is not None else None
    if type(value) is float:
        return like if kind == "f" else _FLOAT64
    if type(value) is bool and kind in ("b", "i", "u"):
        return np.dtype(np.bool_) if kind == "b" else like
    if kind in ("f", "i", "u"):
        return like
    return np.dtype(np.int64) if kind == "b" else _FLOAT64


def _weak_dtype(args):
    """The dtype Python numbers take among `args`: that of the float expressions, else
    of the integer ones, else bool."""
    exprs = [a.dtype for a in args if isinstance(a, Expr)]
    for kinds in ("f", "iu", "b"):
        found = {d for d in exprs if d.kind in kinds}
        if found:
            return found.pop() if len(found) == 1 else np.result_type(*found)
    return None


# ---------------------------------------------------------------------------------
# Applying ops
# ---------------------------------------------------------------------------------

def apply(op_name, args, **params):
    """The node ``op(*args, **params)``, built once: the same call returns the same node."""
    op = OPS[op_name]
    for a in args:
        if type(a) is not Expr:
            like = _weak_dtype(args)
            args = tuple(as_expr(a, like) for a in args)
            break
    if len(args) != op.arity and not (op.arity < 0 and args):   # arity -1: one or more
        raise TypeError(f"{op_name} takes {op.arity} arguments, got {len(args)}")
    key_params = tuple(sorted(params.items())) if params else ()
    key = (op_name, *map(id, args), key_params)
    node = _interned.get(key)
    if node is not None:
        return node
    shape = tuple(op.shape([a.shape for a in args], static_meet, **params))
    dtype = _result_dtype(op, tuple(a.dtype for a in args), key_params)
    node = Expr(op_name, args, key_params, shape, dtype)
    _interned[key] = node
    return node


_dtype_rules: dict = {}


def _result_dtype(op, dtypes, params):
    """The op's dtype rule, memoised: NumPy's promotion costs microseconds per call."""
    key = (op.name, *[d.char for d in dtypes], params)
    dtype = _dtype_rules.get(key)
    if dtype is None:
        dtype = _dtype_rules[key] = np.dtype(op.dtype(list(dtypes), **dict(params)))
    return dtype


# ---------------------------------------------------------------------------------
# Traversal (iterative: graphs may be 100,000 nodes deep)
# ---------------------------------------------------------------------------------

def postorder(roots, parents):
    """Every node reachable from `roots` through `parents(node)`, each after all of its
    parents.  Iterative, with an explicit stack, so depth is limited only by memory."""
    order, done = [], set()
    stack = [(r, False) for r in reversed(roots)]
    push, pop = stack.append, stack.pop
    while stack:
        node, expanded = pop()
        if expanded:
            if node not in done:
                done.add(node)
                order.append(node)
        elif node not in done:
            push((node, True))
            for p in reversed(parents(node)):
                if p not in done:
                    push((p, False))
    return order


def toposort(outputs):
    """Every node the outputs depend on, each after its arguments."""
    return postorder(list(outputs), lambda node: node.args)


def expr_list(value, what, role):
    """(was a single Expr given?, the Exprs as a list) for an argument that takes one
    expression or a list; anything else raises TypeError naming `what` and `role`."""
    single = isinstance(value, Expr)
    try:
        items = [value] if single else list(value)
    except TypeError:
        raise TypeError(f"{what}: {role} must be an expression or a list of expressions, "
                        f"got {type(value).__name__}") from None
    for item in items:
        if not isinstance(item, Expr):
            raise TypeError(f"{what}: {role} must be graphc expressions, got "
                            f"{type(item).__name__} {item!r}")
    return single, items


def inputs_of(outputs):
    """The input nodes the outputs depend on, in the order they are first met."""
    return [n for n in toposort(outputs) if n.is_input]


__all__ = [
    "Expr",
    "ShapeError",
    "apply",
    "as_expr",
    "const",
    "expr_list",
    "inputs_of",
    "matrix",
    "postorder",
    "scalar",
    "tensor",
    "toposort",
    "vector",
]
