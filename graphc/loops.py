"""Loops that compile once: ``gc.scan`` and ``gc.fori_loop``.

``scan(step, init, xs)`` traces ``step`` once, on placeholder inputs (one per carry
component and per slice of ``xs``), into a *body graph*.  Outer expressions the body
uses (shared weights, and any loop-invariant subexpression of them) are hoisted out of
the body: they become placeholders of the body and explicit arguments of the scan
node, so they are computed once and their gradients sum over the iterations.

Each distinct body is one op of the table (``scan_<hash>``, the hash of the body's
structure), whose node is the matrix of *rows*: row ``t`` holds the carry that entered
step ``t`` and the step's outputs ``y_t``, flattened, in one dtype::

    rows[t] = [carry_t (C values) | y_t (Y values)]        shape (T, C + Y)

The stacked ``ys`` are column blocks of the rows; the final carry is the body applied
once more, in the outer graph, to the last row's carry and the last slice of ``xs``.
Storing the carries is what the reverse pass needs (T x C values: see the README).

* ``impl`` (gc.evaluate) is a Python loop running the body graph with the interpreter;
* compiled code calls a generated Numba loop (``for t in range(T)``) around the body's
  own compiled kernel: the op's lowering is a ``Call`` of its ``njit`` function,
  linked into the generated module like a custom op's (``OP_FUNCTIONS``);
* the VJP is a reverse scan over the stored carries (itself a scan op, so it
  differentiates again), the JVP a scan of (carry, tangent) pairs;
* on the tape (tape tensors among ``init``/``xs``, or captured by ``step``) a scan is an
  eager Python loop of ``step``, recorded op by op.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re

import numpy as np

from . import api
from .autodiff import grad, jvp
from .graph import Expr, as_expr, tensor, toposort
from .lowering import Call, Code, View
from .ops import OPS, Op, register
from .shapes import ShapeError, format_shape

# ---------------------------------------------------------------------------------
# Structures: a carry or a y is None, one Expr, or a flat tuple/list of them
# ---------------------------------------------------------------------------------

def _flatten(tree, what):
    if tree is None:
        return [], None
    if isinstance(tree, (tuple, list)):
        for item in tree:
            if item is None or isinstance(item, (tuple, list)):
                raise TypeError(f"scan: {what} may be None, an expression or a flat "
                                f"tuple/list of expressions; got a nested {type(item).__name__}")
        return list(tree), (type(tree), len(tree))
    return [tree], "one"


def _unflatten(spec, items):
    if spec is None:
        return None
    if spec == "one":
        return items[0]
    kind, _ = spec
    return kind(items)


def _substitute(outputs, mapping):
    """`outputs` with the nodes of `mapping` replaced (a rebuild of what depends on them)."""
    from .passes.rewrite import rewrite
    if not mapping:
        return list(outputs)
    return rewrite(list(outputs), lambda node, args: mapping.get(node))


def _size(shape):
    return math.prod(shape)


def _is_float(x):
    return x.dtype.kind == "f"


# ---------------------------------------------------------------------------------
# The body graph
# ---------------------------------------------------------------------------------

class Body:
    """A traced step: placeholders (carry, x slice, hoisted outer values), the outputs
    (new carry components, then y components) and the outer expressions."""

    def __init__(self, carry_ph, x_ph, shared_ph, shared, n_carry, outputs, y_spec):
        self.carry_ph, self.x_ph, self.shared_ph, self.shared = carry_ph, x_ph, shared_ph, shared
        self.n_carry, self.outputs, self.y_spec = n_carry, outputs, y_spec

    @property
    def inputs(self):
        return self.carry_ph + self.x_ph + self.shared_ph

    @property
    def new_carry(self):
        return self.outputs[:self.n_carry]

    @property
    def ys(self):
        return self.outputs[self.n_carry:]


def _trace(step, init, xs, what):
    """Trace ``step(carry_list, x_list) -> (carry_list, y_list, y_spec)`` on placeholders."""
    carry_ph = [tensor(f"carry_{i}", c.shape, c.dtype) for i, c in enumerate(init)]
    x_ph = [tensor(f"x_{j}", x.shape[1:], x.dtype) for j, x in enumerate(xs)]
    new_carry, ys, y_spec = step(carry_ph, x_ph)
    if len(new_carry) != len(init):
        raise TypeError(f"{what}: the step returned {len(new_carry)} carry component(s) for "
                        f"{len(init)} in init; the carry must keep its structure")
    checked = []
    for i, (new, old) in enumerate(zip(new_carry, carry_ph)):
        new = as_expr(new, old.dtype)
        if len(new.shape) != len(old.shape) or any(
                a is not None and b is not None and a != b for a, b in zip(new.shape, old.shape)):
            if new.shape == () or all(isinstance(d, int) for d in new.shape):
                try:
                    new = api.broadcast_to(new, old.shape)
                except ShapeError:
                    new = None
            else:
                new = None
            if new is None:
                raise ShapeError(f"{what}: carry component {i} enters the step with shape "
                                 f"{format_shape(old.shape)} but leaves it with "
                                 f"{format_shape(new_carry[i].shape)}")
        if new.dtype != old.dtype:
            new = api.astype(new, old.dtype)
        checked.append(new)
    ys = [as_expr(y) for y in ys]
    outputs = checked + ys
    placeholders = set(carry_ph) | set(x_ph)
    # hoist what does not depend on the placeholders (outer weights, and whatever the
    # body computes from them alone): computed once, outside the loop
    dependent = set()
    order = toposort(outputs)
    for node in order:
        if node in placeholders or any(a in dependent for a in node.args):
            dependent.add(node)
    free, seen = [], set()

    def hoist(node):
        if node not in dependent and not node.is_const and node not in seen:
            seen.add(node)
            free.append(node)
    for node in order:
        if node in dependent:
            for a in node.args:
                hoist(a)
    for o in outputs:
        hoist(o)
    rank = {n: i for i, n in enumerate(order)}
    free.sort(key=rank.__getitem__)
    shared_ph = [tensor(f"outer_{k}", f.shape, f.dtype) for k, f in enumerate(free)]
    outputs = _substitute(outputs, dict(zip(free, shared_ph)))
    return Body(carry_ph, x_ph, shared_ph, free, len(init), outputs, y_spec)


def _body_hash(body, extra):
    """A hash of the body's structure (placeholders by position, constants by value)."""
    h = hashlib.sha256(repr(extra).encode())
    index = {}
    for x in body.inputs:
        index[x] = len(index)
        h.update(f"in {x.dtype.str} {x.shape}\n".encode())
    for node in toposort(body.outputs):
        if node in index:
            continue
        index[node] = len(index)
        if node.is_input:
            raise AssertionError(f"scan body depends on an input it does not list: {node!r}")
        if node.is_const:
            h.update(f"const {node.dtype.str} {node.shape} ".encode())
            h.update(hashlib.sha256(np.ascontiguousarray(node.value).tobytes()).digest())
        else:
            h.update(f"{node.op} {[index[a] for a in node.args]} {node.params} "
                     f"{OPS[node.op].fingerprint}\n".encode())
    h.update(f"out {[index[o] for o in body.outputs]}".encode())
    return h.hexdigest()[:20]


# ---------------------------------------------------------------------------------
# The scan op
# ---------------------------------------------------------------------------------

class ScanOp(Op):
    """One op per distinct body.  Arguments: the carry's initial components, the
    scanned arrays (a length-only scan scans a bool placeholder array), the outer
    values.  Value: the rows, (T, C + Y)."""

    body = None
    reverse = False
    has_xs = True
    body_hash = ""
    layout = None           # (offset, size, shape, dtype) per carry component, then per y
    width = 0
    rows_dtype = None

    @property
    def fingerprint(self):
        return self.body_hash

    @property
    def n_carry(self):
        return self.body.n_carry

    @property
    def n_xs(self):
        return max(len(self.body.x_ph), 1)

    def split(self, args):
        nc, nx = self.n_carry, self.n_xs
        return list(args[:nc]), list(args[nc:nc + nx]), list(args[nc + nx:])

    def columns(self, rows, which):
        """Column blocks of a rows-shaped value as (T, *shape) expressions."""
        pieces = []
        comps = self.layout[:self.n_carry] if which == "carry" else self.layout[self.n_carry:]
        for off, size, shape, dtype in comps:
            piece = api.apply("scan_cols", rows, off=off, size=size, shape=tuple(shape))
            if piece.dtype != dtype:
                piece = api.astype(piece, dtype)
            pieces.append(piece)
        return pieces

    def row_parts(self, row, which):
        """The components held in one row (a (C + Y,) value)."""
        parts = []
        comps = self.layout[:self.n_carry] if which == "carry" else self.layout[self.n_carry:]
        for off, size, shape, dtype in comps:
            part = row[off] if shape == () else api.reshape(row[off:off + size], shape)
            parts.append(part if part.dtype == dtype else api.astype(part, dtype))
        return parts

    @functools.cached_property
    def njit(self):
        """The compiled loop (built on first use: compiling the body, then the loop)."""
        return _compiled_loop(self)

    @property
    def source(self):
        """The generated loop module and the body's own compiled module (after the
        loop was compiled; None before)."""
        if "njit" not in self.__dict__:
            return None
        return (f"# ---- {self.name}: the loop ----\n{self.loop_source}\n"
                f"# ---- {self.name}: its body, compiled once ----\n{self.body_fn.source}")

    def dot_cluster(self, node_id):
        """Graphviz lines drawing the body graph as a cluster beside the scan node."""
        body = self.body
        order = toposort(body.outputs)
        ids = {n: f"{node_id}_b{i}" for i, n in enumerate(order)}
        what = "reverse scan" if self.reverse else "scan"
        lines = [f"  subgraph cluster_{node_id} {{",
                 f'    label="{what} body ({len(order)} nodes, compiled once)"; '
                 'style=dashed; color="#888";']
        for n in order:
            if n.is_input:
                label, style = n.name, ', style=filled, fillcolor="#efe"'
            elif n.is_const:
                label, style = (f"{float(n.value):g}" if n.shape == () else
                                f"const{list(n.shape)}"), ""
            else:
                label, style = n.op, ""
            label += f"\\n{tuple(n.shape)}" if n.shape else ""
            lines.append(f'    {ids[n]} [label="{label}"{style}];')
        for n in order:
            for a in n.args:
                lines.append(f"    {ids[a]} -> {ids[n]};")
        for k, o in enumerate(body.outputs):
            kind = "carry" if k < body.n_carry else "y"
            lines.append(f'    {ids[o]} -> {node_id} [style=dashed, label="{kind}"];')
        lines.append("  }")
        return lines


def _rows_dtype(components):
    dtypes = [c.dtype for c in components]
    if not dtypes:
        return np.dtype(np.float64)
    if all(d.kind == "f" for d in dtypes):
        return np.result_type(*dtypes)
    return np.dtype(np.float64)         # ints and bools are held exactly in float64


def _scan_op(body, reverse, has_xs):
    """The op of this body (registered once per distinct body)."""
    name = f"scan_{_body_hash(body, ('scan', reverse, has_xs))}"
    op = OPS.get(name)
    if op is not None:
        return op
    for i, c in enumerate(body.outputs):
        if any(d is None for d in c.shape):
            kind = "carry component" if i < body.n_carry else "output y"
            raise ShapeError(f"scan: the {kind} {i if i < body.n_carry else i - body.n_carry} "
                             f"has the dynamic shape {format_shape(c.shape)}; carries and "
                             "per-step outputs need static shapes (only the scanned length "
                             "may be dynamic)")
    layout, off = [], 0
    for c in body.outputs:
        layout.append((off, _size(c.shape), tuple(c.shape), c.dtype))
        off += _size(c.shape)
    rows_dtype = _rows_dtype(body.outputs)
    n_args = len(body.carry_ph) + max(len(body.x_ph), 1) + len(body.shared_ph)
    op = ScanOp(name=name, kind="loop", arity=n_args, impl=None, shape=None,
                dtype=lambda dtypes, **_: rows_dtype, lowering=Call(""),
                vjp=lambda F, g, out, *args: _vjp(OPS[name], F, g, out, args),
                jvp=lambda F, t, out, *args: _jvp(OPS[name], t, out, args),
                doc="a scan loop (gc.scan): the rows [carry_t | y_t] of its steps", public=False)
    for attr, value in (("body", body), ("reverse", bool(reverse)), ("has_xs", has_xs),
                        ("body_hash", name), ("layout", tuple(layout)), ("width", off),
                        ("rows_dtype", rows_dtype),
                        ("impl", functools.partial(_impl, name)),
                        ("shape", functools.partial(_shape, name)),
                        ("shape_only", () if has_xs else (len(body.carry_ph),))):
        object.__setattr__(op, attr, value)
    return register(op)


def _shape(name, shapes, meet, **_):
    op = OPS[name]
    nc, nx = op.n_carry, op.n_xs
    xs_shapes = shapes[nc:nc + nx]
    length = xs_shapes[0][0]
    for s in xs_shapes[1:]:
        length = meet(length, s[0], lambda: f"scan: the scanned arrays have different "
                      f"lengths ({', '.join(format_shape(s) for s in xs_shapes)})")
    return (length, op.width)


def _impl(name, *args):
    """gc.evaluate's scan: a Python loop over the body graph (the interpreter)."""
    from .interpreter import run_graph
    op = OPS[name]
    body = op.body
    inits, xs, shared = op.split(args)
    xs = [np.asarray(x) for x in xs]
    length = xs[0].shape[0]
    for x in xs[1:]:
        if x.shape[0] != length:
            raise ValueError(f"scan: the scanned arrays have different lengths "
                             f"({', '.join(str(x.shape[0]) for x in xs)})")
    rows = np.empty((length, op.width), op.rows_dtype)
    carry = [np.asarray(c) for c in inits]
    order = toposort(body.outputs)
    fixed = dict(zip(body.shared_ph, (np.asarray(w) for w in shared)))
    layout = op.layout
    scanned = xs if op.has_xs else []
    if length == 0:
        raise ValueError("scan: a scan needs at least one step (the scanned length is 0)")
    steps = range(length - 1, -1, -1) if op.reverse else range(length)
    for t in steps:
        for (off, size, _, _), c in zip(layout, carry):
            rows[t, off:off + size] = np.reshape(c, -1)
        env = dict(fixed)
        env.update(zip(body.carry_ph, carry))
        env.update(zip(body.x_ph, (x[t] for x in scanned)))
        outs = run_graph(body.outputs, env, order)
        carry = [np.asarray(v) for v in outs[:op.n_carry]]
        for (off, size, _, _), y in zip(layout[op.n_carry:], outs[op.n_carry:]):
            rows[t, off:off + size] = np.reshape(y, -1)
    return rows


# ---------------------------------------------------------------------------------
# Building a scan in the graph
# ---------------------------------------------------------------------------------

class _Result:
    def __init__(self, op, rows, final, ys, carries, y_spec):
        self.op, self.rows, self.final, self.ys, self.carries = op, rows, final, ys, carries
        self.y_spec = y_spec


def _scan(flat_step, init, xs, length, reverse, what="scan"):
    """The scan node of ``flat_step(carry_list, x_list) -> (carry, ys, y_spec)`` over
    lists of expressions; its final carry, stacked ys and stacked input carries."""
    init = [as_expr(c) for c in init]
    xs = [as_expr(x) for x in xs]
    for j, x in enumerate(xs):
        if x.ndim == 0:
            raise ShapeError(f"{what}: xs component {j} is a scalar; xs are scanned along "
                             "their first axis")
    static = {x.shape[0] for x in xs if x.shape[0] is not None}
    if len(static) > 1:
        raise ShapeError(f"{what}: the scanned arrays have different lengths {sorted(static)}")
    if length is not None:
        if not isinstance(length, (int, np.integer)) or isinstance(length, bool) or length < 0:
            raise TypeError(f"{what}: length must be a non-negative int, got {length!r}")
        if static and static != {int(length)}:
            raise ShapeError(f"{what}: length={length} but xs have length {static.pop()}")
    elif not xs:
        raise TypeError(f"{what}: give xs or length")
    if not xs and length == 0 or (static == {0}):
        raise ValueError(f"{what}: a scan needs at least one step (the length is 0)")
    _register_helper_ops()
    body = _trace(flat_step, init, xs, what)
    if not body.outputs:
        raise ValueError(f"{what}: the step returns no carry and no y: nothing to compute")
    op = _scan_op(body, reverse, has_xs=bool(xs))
    scanned = xs if xs else [api.const(np.zeros(int(length), bool), "bool")]
    rows = api.apply(op.name, *init, *scanned, *body.shared)
    last = 0 if reverse else -1
    row = _slice_at(rows, last)
    x_last = [_slice_at(x, last) for x in xs]
    carry_last = op.row_parts(row, "carry")
    final = _substitute(body.new_carry, {**dict(zip(body.carry_ph, carry_last)),
                                         **dict(zip(body.x_ph, x_last)),
                                         **dict(zip(body.shared_ph, body.shared))})
    ys = op.columns(rows, "y")
    carries = op.columns(rows, "carry")
    return _Result(op, rows, final, ys, carries, body.y_spec)


def _slice_at(x, i):
    """``x[i]`` along the first axis, ``i`` 0 or -1, the axis possibly dynamic: a view
    (a gather would be runtime-checked, and its checks cost Numba seconds to compile)."""
    return api.apply("scan_row", x, index=i)


def _put_row_lines(target, args, node, shape):
    g, _ = args
    lines = [f"{target} = np.zeros({shape}, dtype=np.{node.dtype.name})"]
    if node.ndim == 1:
        return lines + [f"{target}[{node.kwargs['index']}] = {g}"]
    # element by element: Numba takes seconds to compile an array-into-slice setitem
    return lines + [f"_{target}_row = {target}[{node.kwargs['index']}].reshape(-1)",
                    f"_{target}_g = np.ascontiguousarray({g}).reshape(-1)",
                    f"for _k in range(_{target}_row.size):",
                    f"    _{target}_row[_k] = _{target}_g[_k]"]


def _cols_code(x, node, out_shape):
    off, size, shape = node.kwargs["off"], node.kwargs["size"], node.kwargs["shape"]
    if shape == ():
        return f"{x}[:, {off}]"
    if len(shape) == 1:
        return f"{x}[:, {off}:{off + size}]"
    return f"np.ascontiguousarray({x}[:, {off}:{off + size}]).reshape({out_shape})"


def _put_cols_lines(target, args, node, shape):
    g, _ = args
    off, size = node.kwargs["off"], node.kwargs["size"]
    return [f"{target} = np.zeros({shape}, dtype=np.{node.dtype.name})",
            f"_{target}_g = np.ascontiguousarray({g}).reshape(({target}.shape[0], {size}))",
            f"for _i in range({target}.shape[0]):",
            f"    for _k in range({size}):",
            f"        {target}[_i, {off} + _k] = _{target}_g[_i, _k]"]


def _put_cols_impl(g, like, off, size, shape):
    out = np.zeros(np.shape(like), np.asarray(g).dtype)
    out[:, off:off + size] = np.reshape(g, (out.shape[0], size))
    return out


def _row_shape(shapes, meet, index):
    if not shapes[0]:
        raise ShapeError("scan_row: a scalar has no rows")
    return tuple(shapes[0][1:])


def _put_row_impl(g, like, index):
    out = np.zeros(np.shape(like), np.asarray(g).dtype)
    out[index] = g
    return out


@functools.cache
def _register_helper_ops():
    """The views and adjoints scan nodes are unpacked with, registered on the first
    scan (so that the op table of a fresh ``import graphc`` holds only its own ops)."""
    register(Op(name="scan_cols", kind="structure", arity=1,
                impl=lambda x, off, size, shape: np.reshape(
                    np.asarray(x)[:, off:off + size], (np.shape(x)[0],) + tuple(shape)),
                shape=lambda shapes, meet, off, size, shape: (shapes[0][0],) + tuple(shape),
                lowering=View(_cols_code, indexes=True), params=("off", "size", "shape"),
                public=False,
                vjp=lambda F, g, out, x, off, size, shape: (
                    F.apply("scan_put_cols", g, x, off=off, size=size, shape=shape),),
                jvp=lambda F, t, out, x, off, size, shape: F.apply(
                    "scan_cols", t[0], off=off, size=size, shape=shape),
                doc="columns off:off+size of scan rows as (T, *shape); for gc.scan"))
    register(Op(name="scan_put_cols", kind="structure", arity=2, impl=_put_cols_impl,
                shape=lambda shapes, meet, off, size, shape: tuple(shapes[1]),
                dtype=lambda dtypes, **_: dtypes[0],
                lowering=Code(_put_cols_lines), params=("off", "size", "shape"), public=False,
                shape_only=(1,),
                vjp=lambda F, g, out, gr, like, off, size, shape: (
                    F.apply("scan_cols", g, off=off, size=size, shape=shape), None),
                jvp=lambda F, t, out, gr, like, off, size, shape: F.apply(
                    "scan_put_cols", t[0], like, off=off, size=size, shape=shape),
                doc="zeros of `like`'s shape with columns off:off+size set from g: scan_cols' adjoint"))
    register(Op(name="scan_row", kind="structure", arity=1,
                impl=lambda x, index: np.asarray(x)[index], shape=_row_shape,
                lowering=View(lambda x, node, out_shape: f"{x}[{node.kwargs['index']}]",
                              indexes=True),
                params=("index",), public=False,
                vjp=lambda F, g, out, x, index: (F.apply("scan_put_row", g, x, index=index),),
                jvp=lambda F, t, out, x, index: F.apply("scan_row", t[0], index=index),
                doc="x[index] along the first axis (index 0 or -1), a view; for gc.scan"))
    register(Op(name="scan_put_row", kind="structure", arity=2, impl=_put_row_impl,
                shape=lambda shapes, meet, index: tuple(shapes[1]),
                dtype=lambda dtypes, **_: dtypes[0],
                lowering=Code(_put_row_lines), params=("index",), public=False, shape_only=(1,),
                vjp=lambda F, g, out, gr, like, index: (F.apply("scan_row", g, index=index), None),
                jvp=lambda F, t, out, gr, like, index: F.apply("scan_put_row", t[0], like, index=index),
                doc="zeros of `like`'s shape with row `index` set to g: scan_row's adjoint"))


def _tape_tensors(leaves):
    from . import tape
    return any(isinstance(v, tape.Tensor) for v in leaves)


def scan(step, init, xs=None, length=None, reverse=False):
    """``carry, ys = scan(step, init, xs=None, length=None, reverse=False)`` (JAX's
    ``lax.scan``): ``step(carry, x) -> (new_carry, y)`` runs once per slice of `xs`
    along its first axis (from the last slice first with ``reverse=True``); `ys` stacks
    the ys along a new first axis, aligned with `xs`.  carry and y may be an
    expression, a flat tuple/list of them, or None; xs likewise.  The step may use outer
    expressions: their gradients sum over the iterations.

    The step is traced once into a body graph: compiled code runs it as a loop, however
    long; gradients are a reverse scan over the stored carries (T x carry size)."""
    init_leaves, carry_spec = _flatten(init, "init")
    x_leaves, x_spec = _flatten(xs, "xs")
    if _tape_tensors(init_leaves + x_leaves):
        return _eager_scan(step, init, xs, length, reverse)

    def flat_step(carry, x):
        out = step(_unflatten(carry_spec, carry), _unflatten(x_spec, x))
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise TypeError("scan: step(carry, x) must return a pair (new_carry, y)")
        new_carry, y = out
        new_leaves, new_spec = _flatten(new_carry, "the new carry")
        if (new_spec is None) != (carry_spec is None):
            raise TypeError(f"scan: the step returned a carry of structure {new_spec} for "
                            f"init of structure {carry_spec}")
        y_leaves, y_spec = _flatten(y, "y")
        return new_leaves, y_leaves, y_spec
    try:
        result = _scan(flat_step, init_leaves, x_leaves, length, reverse)
    except TypeError as exc:
        if "tape tensors" in str(exc):       # the step captured tape tensors
            return _eager_scan(step, init, xs, length, reverse)
        raise
    return _unflatten(carry_spec, result.final), _unflatten(result.y_spec, result.ys)


def fori_loop(lower, upper, body, init):
    """``carry = fori_loop(lower, upper, body, init)``: ``body(i, carry) -> carry`` for
    i = lower, ..., upper - 1 (an int64 scalar); a scan over ``arange(lower, upper)``.
    The bounds are Python ints (for a length known only at call time, scan over an
    array)."""
    for bound in (lower, upper):
        if not isinstance(bound, (int, np.integer)) or isinstance(bound, bool):
            raise TypeError(f"fori_loop: the bounds must be Python ints, got {bound!r}; for "
                            "a length known only at call time use gc.scan over an array")
    if upper <= lower:
        return init
    carry, _ = scan(lambda c, i: (body(i, c), None), init,
                    xs=api.arange(int(lower), int(upper), dtype="int64"))
    return carry


def _eager_scan(step, init, xs, length, reverse):
    """The tape's scan: a Python loop of `step` on tape tensors (recorded op by op)."""
    x_leaves, x_spec = _flatten(xs, "xs")
    lengths = {int(np.shape(x)[0]) for x in x_leaves}
    if length is not None:
        lengths.add(int(length))
    if len(lengths) != 1:
        raise ShapeError(f"scan: inconsistent lengths {sorted(lengths)}")
    (n,) = lengths
    carry, per_step = init, [None] * n
    y_spec = None
    for t in (range(n - 1, -1, -1) if reverse else range(n)):
        carry, y = step(carry, _unflatten(x_spec, [x[t] for x in x_leaves]))
        per_step[t], y_spec = _flatten(y, "y")
    if y_spec is None:
        return carry, None
    ys = [api.stack([per_step[t][k] for t in range(n)], 0) for k in range(len(per_step[0]))]
    return carry, _unflatten(y_spec, ys)


# ---------------------------------------------------------------------------------
# Derivatives: a reverse scan (VJP), a scan of tangents (JVP)
# ---------------------------------------------------------------------------------

def _zeros_like(x):
    return api.zeros_like(x)


def _dot(outputs, cotangents):
    total = None
    for o, c in zip(outputs, cotangents):
        term = api.sum(o * c) if o.shape else o * c
        total = term if total is None else total + term
    return total


def _float_positions(op, args):
    """The scan's arguments split (initial carries, xs, shared values; the xs actually
    scanned) and which carries, xs and ys are floats: what derivatives flow through."""
    body = op.body
    inits, xs, shared = op.split(args)
    real_xs = xs if op.has_xs else []
    fc = [i for i in range(op.n_carry) if _is_float(body.carry_ph[i])]
    fx = [j for j in range(len(real_xs)) if _is_float(body.x_ph[j])]
    fy = [j for j, y in enumerate(body.ys) if _is_float(y)]
    return inits, xs, shared, real_xs, fc, fx, fy


def _vjp(op, F, g, out, args):
    if not isinstance(g, Expr):
        return _on_arrays(op, "vjp", g, out, args)
    body = op.body
    inits, xs, shared, real_xs, fc, fx, fy = _float_positions(op, args)
    nc, nx = op.n_carry, len(real_xs)
    fw = [k for k in range(len(shared)) if _is_float(body.shared_ph[k])]
    stored = op.columns(out, "carry")
    g_carry = op.columns(g, "carry")
    g_ys = op.columns(g, "y")
    init = [_zeros_like(inits[i]) for i in fc] + [_zeros_like(shared[k]) for k in fw]
    bxs = stored + real_xs + [g_carry[i] for i in fc] + [g_ys[j] for j in fy]

    def back_step(carry, xt):
        lam, acc = carry[:len(fc)], carry[len(fc):]
        c_t, x_t = xt[:nc], xt[nc:nc + nx]
        gc_t, gy_t = xt[nc + nx:nc + nx + len(fc)], xt[nc + nx + len(fc):]
        outs = _substitute(body.outputs, {**dict(zip(body.carry_ph, c_t)),
                                          **dict(zip(body.x_ph, x_t))})
        cost = _dot([outs[i] for i in fc] + [outs[nc + j] for j in fy], lam + gy_t)
        wrt = [c_t[i] for i in fc] + [x_t[j] for j in fx] + [body.shared_ph[k] for k in fw]
        if cost is None or not wrt:
            grads = [_zeros_like(w) for w in wrt]
        else:
            grads = grad(cost, wrt)
            grads = [grads] if isinstance(grads, Expr) else list(grads)
        grads = _substitute(grads, dict(zip(body.shared_ph, shared)))     # this node's values
        g_c, g_x, g_w = grads[:len(fc)], grads[len(fc):len(fc) + len(fx)], grads[len(fc) + len(fx):]
        new_lam = [a + b for a, b in zip(g_c, gc_t)]
        new_acc = [a + b for a, b in zip(acc, g_w)]
        return new_lam + new_acc, g_x, (list, len(g_x))
    result = _scan(back_step, init, bxs, None, not op.reverse, what="scan (reverse pass)")
    contributions = [None] * len(args)
    for n, i in enumerate(fc):
        contributions[i] = result.final[n]
    for n, j in enumerate(fx):
        contributions[nc + j] = result.ys[n]
    for n, k in enumerate(fw):
        contributions[nc + len(xs) + k] = result.final[len(fc) + n]
    return tuple(contributions)


def _jvp(op, tangents, out, args):
    body = op.body
    inits, _, shared, real_xs, fc, fx, fy = _float_positions(op, args)
    t_inits, t_xs, t_shared = op.split(tangents)
    nc, nx = op.n_carry, len(real_xs)
    tw = [k for k in range(len(shared)) if _is_float(body.shared_ph[k]) and t_shared[k] is not None]
    init = inits + [t_inits[i] if t_inits[i] is not None else _zeros_like(inits[i]) for i in fc]
    jxs = real_xs + [t_xs[j] if t_xs[j] is not None else _zeros_like(real_xs[j]) for j in fx]

    def joint_step(carry, xt):
        c, dc = carry[:nc], carry[nc:]
        x, dx = xt[:nx], xt[nx:]
        outs = _substitute(body.outputs, {**dict(zip(body.carry_ph, c)), **dict(zip(body.x_ph, x))})
        primals = [c[i] for i in fc] + [x[j] for j in fx] + [body.shared_ph[k] for k in tw]
        directions = list(dc) + list(dx) + [t_shared[k] for k in tw]
        wanted = [outs[i] for i in fc] + [outs[nc + j] for j in fy]
        tans = jvp(wanted, primals, directions) if primals and wanted else [
            _zeros_like(w) for w in wanted]
        outs, tans = (_substitute(v, dict(zip(body.shared_ph, shared)))
                      for v in (outs, tans))
        ys = outs[nc:] + tans[len(fc):]
        return outs[:nc] + tans[:len(fc)], ys, (list, len(ys))
    length = None if op.has_xs else out.shape[0]
    result = _scan(joint_step, init, jxs, length, op.reverse, what="scan (forward mode)")
    d_carry = dict(zip(fc, result.carries[nc:]))
    d_ys = dict(zip(fy, result.ys[len(body.ys):]))
    total = None
    for n, (off, size, shape, dtype) in enumerate(op.layout):
        t = d_carry.get(n) if n < nc else d_ys.get(n - nc)
        if t is None:
            continue
        t = t if t.dtype == op.rows_dtype else api.astype(t, op.rows_dtype)
        piece = api.apply("scan_put_cols", t, out, off=off, size=size, shape=tuple(shape))
        total = piece if total is None else total + piece
    return total if total is not None else api.zeros_like(out)


_array_rules: dict = {}


def _on_arrays(op, which, g, out, args):
    """A derivative rule on NumPy values (the tape): the graph rule, built once per
    argument shapes, evaluated by the interpreter."""
    from .interpreter import run_graph
    values = [np.asarray(v) for v in (g, out, *args)]
    key = (op.name, which, tuple((v.shape, v.dtype.str) for v in values))
    built = _array_rules.get(key)
    if built is None:
        ph = [tensor(f"a{i}", v.shape, v.dtype) for i, v in enumerate(values)]
        node = api.apply(op.name, *ph[2:])
        contributions = _vjp(op, api, ph[0], node, ph[2:])
        outs = [c for c in contributions if c is not None]
        built = _array_rules[key] = (ph, node, contributions, outs)
    ph, node, contributions, outs = built
    env = dict(zip(ph, values))
    env[node] = values[1]
    computed = iter(run_graph(outs, env)) if outs else iter(())
    return tuple(None if c is None else next(computed) for c in contributions)


# ---------------------------------------------------------------------------------
# Compiled code: a Numba loop around the body's kernel
# ---------------------------------------------------------------------------------

_loop_modules: dict = {}


def scalar_arg(x):
    """A scalar argument of a compiled loop: the calling kernel may hand it over as a
    one-element array (a view of a row, made contiguous); Numba picks the overload."""
    return np.asarray(x).reshape(-1)[0]


def _register_scalar_arg():
    from numba.core import types
    from numba.extending import overload

    @overload(scalar_arg)
    def _overload(x):
        if isinstance(x, types.Array):
            return lambda x: x.ravel()[0]
        return lambda x: x


_register_scalar_arg()


def _compiled_loop(op):
    """The loop as a Numba function of the scan node's arguments, returning the rows."""
    from .codegen import cache
    from .function import compile as compile_graph
    body = op.body
    fn = compile_graph(body.inputs, body.outputs)
    object.__setattr__(op, "body_fn", fn)
    source = fn.module_source
    params = re.search(r"^def fn\((.*)\):$", source, re.MULTILINE).group(1)
    params = [p.strip() for p in params.split(",") if p.strip()]
    call = re.search(r"^    result = _kernel\((.*)\)$", source, re.MULTILINE).group(1)
    nc, nx = op.n_carry, op.n_xs
    n_sh = len(body.shared_ph)
    arg_names = ([f"a{i}" for i in range(nc)] + [f"xs{j}" for j in range(nx)]
                 + [f"w{k}" for k in range(n_sh)])
    step_values = ([f"c{i}" for i in range(nc)]
                   + [f"xs{j}[t]" for j in range(len(body.x_ph))] + [f"w{k}" for k in range(n_sh)])
    mapping = dict(zip(params, step_values))
    call = re.sub(r"\b[A-Za-z_]\w*\b", lambda m: mapping.get(m.group(0), m.group(0)), call)
    linked = sorted({tok for tok in re.findall(r"\b[A-Za-z_]\w*\b", call)
                     if isinstance(getattr(fn.module, tok, None), np.ndarray)})
    lines = [f"def loop({', '.join(arg_names)}):",
             "    n = xs0.shape[0]",
             f"    rows = np.empty((n, {op.width}), np.{op.rows_dtype.name})"]
    lines.append("    if n == 0:")
    lines.append("        raise ValueError('scan: a scan needs at least one step (the scanned "
                 "length is 0)')")
    for i, (off, size, shape, dtype) in enumerate(op.layout[:nc]):
        lines.append(f"    c{i} = _scalar(a{i})" if shape == ()
                     else f"    c{i} = np.ascontiguousarray(a{i})")
    for k, w in enumerate(body.shared_ph):
        if w.shape == ():
            lines.append(f"    w{k} = _scalar(w{k})")
    lines.append("    for s in range(n):")
    lines.append("        t = n - 1 - s" if op.reverse else "        t = s")

    def store(value, off, size, shape):
        if shape == ():
            return f"        rows[t, {off}] = {value}"
        return (f"        flat = np.ascontiguousarray({value}).reshape(-1)\n"
                f"        for k in range({size}):\n"
                f"            rows[t, {off} + k] = flat[k]")
    for i, (off, size, shape, _) in enumerate(op.layout[:nc]):
        lines.append(store(f"c{i}", off, size, shape))
    lines.append(f"        r = _body({call})")
    for i in range(nc):
        lines.append(f"        c{i} = r[{i}]")
    for j, (off, size, shape, _) in enumerate(op.layout[nc:]):
        lines.append(store(f"r[{nc + j}]", off, size, shape))
    lines.append("    return rows")
    loop_src = "\n".join(lines)
    object.__setattr__(op, "loop_source", loop_src)
    key = hashlib.sha256(f"scan loop {fn.key} {loop_src} {linked}".encode()).hexdigest()
    hit = _loop_modules.get(key)
    if hit is None:
        def module_source(cache=True):
            return "\n".join([
                f'"""graphc scan loop {op.name}: generated, do not edit."""',
                "import numba", "import numpy as np", "",
                "from graphc.loops import scalar_arg as _scalar",
                f"GRAPHC_KEY = {key!r}",
                "_body = None  # linked: the body's compiled kernel",
                *[f"{name} = None  # linked: a constant of the body" for name in linked],
                "", "",
                f"@numba.njit(cache={cache}, nogil=True, error_model='numpy')",
                loop_src, ""])
        module = cache.load(key, "graphc_scan")
        if module is None:
            module, _ = cache.store_and_import(key, module_source, "graphc_scan")
        module._body = fn.kernel
        for name in linked:
            setattr(module, name, getattr(fn.module, name))
        hit = _loop_modules[key] = module
    return hit.loop


__all__ = ["Body", "ScanOp", "fori_loop", "scan"]
