"""Call signatures: which dimensions must agree, and the argument checker that says so.

The op table's shape rules are run once more over the graph, this time with a
*unifying* ``meet``: every dynamic input dimension is a variable, and wherever two
dimensions must be equal (broadcasting, a matrix product) their variables are merged
or bound to a size.  What comes out is, for each input, the size or the class of every
dimension.  From it we generate a small Python function that converts and checks the
arguments: it is fast (straight-line code, no loops over metadata), it is the very same
code for ``gc.evaluate``, compiled Functions and exported modules, and its source is
readable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .graph import toposort
from .ops import OPS
from .shapes import ShapeError, format_shape


class DimVar:
    """A dynamic dimension (``input``'s axis ``axis``) in a union-find forest."""

    __slots__ = ("axis", "input", "parent", "size")

    def __init__(self, input, axis):
        self.input, self.axis, self.parent, self.size = input, axis, self, None

    def root(self):
        node = self
        while node.parent is not node:
            node.parent = node.parent.parent
            node = node.parent
        return node


def unifying_meet(a, b, what):
    """``meet`` for symbolic shapes: records that `a` and `b` are the same size."""
    if a is None:
        return b
    if b is None:
        return a
    if isinstance(a, DimVar) and a.root().size is not None:
        a = a.root().size
    if isinstance(b, DimVar) and b.root().size is not None:
        b = b.root().size
    if isinstance(a, int) and isinstance(b, int):
        if a != b:
            raise ShapeError(what())
        return a
    if isinstance(a, int):
        a, b = b, a
    ra = a.root()
    if isinstance(b, int):
        ra.size = b
        return b
    rb = b.root()
    if ra is not rb:
        rb.parent = ra
    return ra


def symbolic_shapes(outputs, inputs):
    """Every node's shape with dynamic dimensions as (unified) ``DimVar`` s."""
    shapes = {}
    for x in inputs:
        shapes[x] = tuple(DimVar(x, i) if d is None else d for i, d in enumerate(x.shape))
    for node in toposort(outputs):
        if node in shapes:
            continue
        if node.is_input:
            raise ValueError(f"the outputs depend on input {node.name!r}, which is not "
                             f"among the inputs given: {[x.name for x in inputs]}")
        if node.is_const:
            shapes[node] = node.shape
            continue
        op = OPS[node.op]
        shapes[node] = tuple(op.shape([shapes[a] for a in node.args], unifying_meet,
                                      **node.kwargs))
    return {n: tuple(_resolve(d) for d in s) for n, s in shapes.items()}


def _resolve(d):
    if isinstance(d, DimVar):
        root = d.root()
        return root.size if root.size is not None else root
    return d


def check_inputs(inputs):
    """Refuse, naming them, function inputs that are not graph inputs, are listed
    twice, or share a name."""
    names = [x.name if hasattr(x, "name") else None for x in inputs]
    for i, x in enumerate(inputs):
        if not (hasattr(x, "is_input") and x.is_input):
            raise TypeError(f"inputs[{i}] must be an input made by gc.scalar/vector/"
                            f"matrix/tensor, got {x!r}")
    if len(set(map(id, inputs))) != len(inputs):
        raise ValueError(f"an input is listed twice in {names}")
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ValueError(f"two different inputs are named {sorted(dup)}; "
                         "input names must be unique within a function")


@dataclass
class Signature:
    """What a compiled function accepts: every node's shape, with dynamic input
    dimensions resolved to ints or the classes of dimensions that must agree."""

    inputs: list
    shapes: dict            # node -> shape with ints and DimVar roots

    @classmethod
    def build(cls, inputs, outputs, all_nodes=True):
        """The signature of a function of `inputs` computing `outputs`.  With
        ``all_nodes=False`` only the inputs' shapes are resolved (all a checker needs),
        which skips the graph walk when no input has a dynamic dimension."""
        check_inputs(inputs)
        if not all_nodes and all(None not in x.shape for x in inputs):
            shapes = {x: x.shape for x in inputs}
        else:
            shapes = symbolic_shapes(outputs, inputs)
        return cls(inputs, shapes)

    def checker_source(self, names=None, inplace=()):
        """The argument checker ``check_args`` (see the module function)."""
        return checker_source(self.inputs, self.shapes, names, inplace)

    def make_checker(self):
        namespace = {"np": np, "convert_argument": convert_argument, "shape_error": shape_error,
                     "check_inplace": check_inplace}
        exec(compile(self.checker_source(), "<graphc argument checker>", "exec"), namespace)  # noqa: S102  generated here
        return namespace["check_args"]


def checker_source(inputs, shapes, names=None, inplace=()):
    """The source of ``check_args(*args)``: converts each argument to its input's dtype
    and checks rank, fixed sizes and that dynamic sizes agree.  Scalars stay Python
    floats on the fast path (a float64 scalar needs no conversion at all).  Inputs in
    `inplace` are written by the kernel, so they are checked, never converted."""
    local = names or {x: x.name for x in inputs}
    lines = [f"def check_args({', '.join(local[x] for x in inputs)}):",
             f'    """Convert and check the arguments of fn({", ".join(local[x] for x in inputs)})."""']
    for x in _Renamed.wrap(inputs, local):
        expected = format_shape(x.shape)
        if x.shape == () and x.dtype == np.float64:
            lines.append(f"    if not isinstance({x.name}, float):   # float and np.float64")
            lines.append(f"        {x.name} = float(convert_argument({x.name}, {x.name!r}, "
                         f"np.float64, 0, {expected!r}))")
        elif x.shape == ():
            lines.append(f"    {x.name} = np.{x.dtype.name}(convert_argument({x.name}, {x.name!r}, "
                         f"np.{x.dtype.name}, 0, {expected!r}))")
        elif x.node in inplace:
            lines.append(f"    check_inplace({x.name}, {x.name!r}, np.{x.dtype.name}, "
                         f"{x.ndim}, {expected!r})")
        else:
            lines.append(f"    {x.name} = convert_argument({x.name}, {x.name!r}, np.{x.dtype.name}, "
                         f"{x.ndim}, {expected!r})")
    first_seen = {}
    for x in _Renamed.wrap(inputs, local):
        declared = format_shape(x.shape)
        for axis, dim in enumerate(shapes[x.node]):
            if isinstance(dim, int):
                lines.append(f"    if {x.name}.shape[{axis}] != {dim}:")
                lines.append(f"        shape_error({x.name!r}, {x.name}, {declared!r}, "
                             f"{axis}, {dim}, None)")
            elif dim in first_seen:
                other, other_axis = first_seen[dim]
                lines.append(f"    if {x.name}.shape[{axis}] != {other}.shape[{other_axis}]:")
                lines.append(f"        shape_error({x.name!r}, {x.name}, {declared!r}, {axis}, "
                             f"None, ({other!r}, {other_axis}, {other}.shape[{other_axis}]))")
            else:
                first_seen[dim] = (x.name, axis)
    params = [local[x] for x in inputs]
    lines.append(f"    return ({', '.join(params)}{',' if len(params) == 1 else ''})")
    return "\n".join(lines) + "\n"


@dataclass
class _Renamed:
    """An input seen under the variable name the generated code gives it."""
    node: object
    name: str

    shape = property(lambda self: self.node.shape)
    dtype = property(lambda self: self.node.dtype)
    ndim = property(lambda self: self.node.ndim)

    @classmethod
    def wrap(cls, inputs, local):
        return [cls(x, local[x]) for x in inputs]


def convert_argument(value, name, dtype, ndim, expected):
    """``np.asarray(value, dtype)`` with the errors a user can act on.

    Real numbers of any kind (bool, int, float) convert; complex, object, string data
    and ``None`` are refused with a ``TypeError`` naming the input."""
    if value is None:
        raise TypeError(f"input {name!r}: expected an array of shape {expected}, got None")
    kind = getattr(getattr(value, "dtype", None), "kind", None)
    if kind is not None and kind not in "biuf":
        raise TypeError(f"input {name!r}: expected real numbers ({np.dtype(dtype).name}), "
                        f"got an array of dtype {value.dtype}")
    try:
        arr = np.asarray(value)
    except Exception as exc:  # noqa: BLE001  ragged lists and the like
        raise TypeError(f"input {name!r}: cannot convert {type(value).__name__} to an "
                        f"array: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"input {name!r}: expected real numbers ({np.dtype(dtype).name}), "
                        f"got {type(value).__name__} of dtype {arr.dtype}")
    if arr.ndim != ndim:
        raise ValueError(f"input {name!r}: expected shape {expected} ({ndim}-D), "
                         f"got shape {arr.shape}")
    target = np.dtype(dtype)
    if target.kind != "f" and arr.dtype != target:
        check_exact(arr, name, target)
    if arr.dtype != dtype or not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr, dtype=dtype) if ndim else arr.astype(dtype)
    return arr


def check_exact(arr, name, target):
    """Integer and bool inputs take only values they hold exactly: floats are refused
    (1.5 is not a label), so are integers out of range, and non-bools for bool."""
    if target.kind == "b" or arr.dtype.kind == "f":
        raise TypeError(f"input {name!r}: expected {target.name} data, got {arr.dtype} "
                        f"(convert it explicitly, e.g. .astype(np.{target.name}))")
    info = np.iinfo(target)
    if arr.size and arr.dtype.kind != "b" and (arr.min() < info.min or arr.max() > info.max):
        raise ValueError(f"input {name!r}: values outside the range of {target.name}")


def check_inplace(value, name, dtype, ndim, expected):
    """An argument the function updates in place must be the array itself: a converted
    copy would silently receive the update instead."""
    ok = (type(value) is np.ndarray and value.dtype == dtype and value.ndim == ndim
          and value.flags.c_contiguous and value.flags.writeable)
    if not ok:
        got = (f"{type(value).__name__} {getattr(value, 'dtype', '')} "
               f"{getattr(value, 'shape', '')}").strip()
        raise TypeError(f"input {name!r} is updated in place, so it must be a writeable, "
                        f"C-contiguous {np.dtype(dtype).name} array of shape {expected}; "
                        f"got {got}")


def shape_error(name, arr, declared, axis, size, other):
    if other is None:
        raise ValueError(f"input {name!r}: expected shape {declared} with dimension {axis} "
                         f"equal to {size}, got shape {arr.shape}")
    other_name, other_axis, other_size = other
    raise ValueError(f"input {name!r}: dimension {axis} of shape {arr.shape} is "
                     f"{arr.shape[axis]}, but it must equal dimension {other_axis} of input "
                     f"{other_name!r} ({other_size}) (declared {declared})")
