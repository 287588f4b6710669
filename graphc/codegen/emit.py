"""Emission: a scheduled program becomes the source of one Python module.

The module holds the Numba kernel (forward and backward statements, one per node, each
with a comment naming the node it computes), the argument checker, and ``fn``, the
function users call.  It imports only ``math``, ``numpy`` and ``numba``, so the same
text is the disk-cache entry and what ``gc.export`` writes.
"""

from __future__ import annotations

import base64
import inspect
import keyword
import re

import numpy as np

from ..ops import OPS
from ..signature import check_inplace, convert_argument, shape_error
from .runtime import definitions as runtime_definitions
from .runtime import placeholder as runtime_placeholder
from .loopbody import optimized_body
from .scalar import helper, scalar_code
from .schedule import Loop, Step, value_args

#: Scalar-only programs longer than this are split into several jitted functions:
#: LLVM's compile time grows faster than linearly with function size.
CHUNK_STATEMENTS = 6000

_RESERVED = {"np", "math", "numba", "fn", "check_args", "INPUTS", "OUTPUTS", "work"}
_GENERATED = re.compile(r"^(v|e|n|i|k|out)\d+$|^_")


class Names:
    """Stable, readable names: ``v12`` for node 12's value, ``e12`` for its element in a
    loop, ``n0`` for a dynamic size, ``k0`` for a constant array."""

    def __init__(self, plan, inputs):
        self.plan = plan
        self.index = {}
        for node in plan.order:
            self.index[node] = len(self.index)
        self.inputs = {x: (x.name if x.name not in _RESERVED and not _GENERATED.match(x.name)
                           and not keyword.iskeyword(x.name) else f"arg_{x.name}")
                       for x in inputs}
        self.consts = {}
        self.dims = {}

    def value(self, node):
        if node.is_input:
            return self.inputs[node]
        if node.is_const:
            if node.shape == ():
                return _literal(node.value)
            return self.consts.setdefault(node, f"k{len(self.consts)}")
        return f"v{self.index[node]}"

    def element(self, node):
        return f"e{self.index[node]}"

    def dim(self, d):
        if isinstance(d, int):
            return str(d)
        return self.dims.setdefault(d, f"n{len(self.dims)}")

    def shape(self, shape):
        dims = [self.dim(d) for d in shape]
        return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def _literal(value):
    v = float(value)
    if v != v:
        return "np.nan"
    if v in (float("inf"), float("-inf")):
        return "np.inf" if v > 0 else "-np.inf"
    if np.dtype(value.dtype) == np.bool_:
        return repr(bool(value))
    return repr(v)


def _describe(node, names):
    """The comment that ties a statement to its graph node: ``add(v3, b)``."""
    args = ", ".join(names.value(a) for a in node.args)
    params = "".join(f", {k}={v}" for k, v in node.params
                     if k not in ("dtype",)) if node.params else ""
    return f"{node.op}({args}{params})"


class KernelWriter:
    def __init__(self, plan, names, outputs, parallel=False, check_finite=False,
                 sympy_loops=False):
        self.plan, self.names, self.outputs = plan, names, outputs
        self.parallel, self.check_finite = parallel, check_finite
        self.sympy_loops = sympy_loops and not check_finite
        self.checked = {}          # node index -> node, for the NaN/Inf report
        self.lines = []
        self.backward_start = None

    def emit(self, line, depth=1):
        self.lines.append("    " * depth + line)

    # -- steps ----------------------------------------------------------------
    def step(self, st):
        node, names = st.node, self.names
        target = names.value(node)
        comment = f"  # {_describe(node, names)}"
        if st.kind == "scalar":
            args = [names.value(a) for a in node.args]
            code = scalar_code(node, args) if OPS[node.op].kind == "elementwise" else args[0]
            self.emit(f"{target} = {code}{comment}")
            self._finite_check(node, target, scalar=True)
        elif st.kind == "matmul":
            a, b = node.args
            av, bv = self._dot_operand(a, node.dtype), self._dot_operand(b, node.dtype)
            self.emit(f"{target} = _dot({av}, {bv}){comment}")
            self._finite_check(node, target, scalar=node.shape == ())
        elif st.kind == "numel":
            x = node.args[0]
            dims = [names.dim(self.plan.shapes[x][a]) for a in node.kwargs["axis"]]
            self.emit(f"{target} = float({' * '.join(dims) or '1'}){comment}")
        else:
            self._view(node, target, comment)

    def _dot_operand(self, a, dtype):
        name = self.names.value(a)
        if a.shape == ():
            return name
        if a.dtype != dtype:
            return f"{name}.astype(np.{dtype.name})"
        return name

    def _view(self, node, target, comment):
        names = self.names
        (x,) = node.args
        xv = names.value(x)
        out_shape = names.shape(self.plan.shapes[node])
        if x.shape == ():
            self.emit(f"{target} = np.full({out_shape}, {xv}, dtype=np.{node.dtype.name}){comment}")
        elif node.op == "transpose":
            axes = node.kwargs["axes"]
            expr = f"{xv}.T" if len(axes) == 2 else f"np.transpose({xv}, {axes})"
            self.emit(f"{target} = {expr}{comment}")
        else:      # reshape, expand_dims: a view of a contiguous array
            self.emit(f"{target} = np.ascontiguousarray({xv}).reshape({out_shape}){comment}")

    # -- loops ----------------------------------------------------------------
    def loop(self, loop):
        names, plan = self.names, self.plan
        rank = len(loop.shape)
        members = ", ".join(names.value(m) for m in loop.members + loop.sinks)
        self.emit(f"# fused loop over {names.shape(loop.shape)}: {members}")
        for m in loop.members:
            if m in plan.stored:
                self._allocate(m, "np.empty({shape}, dtype=np.{dtype})")
        for r in loop.sinks:
            init = {"sum": "0.0", "max": "-np.inf", "min": "np.inf"}[r.op]
            if plan.shapes[r] == ():
                self.emit(f"{names.value(r)} = {init}")
            else:
                self._allocate(r, f"np.full({{shape}}, {init}, dtype=np.{{dtype}})", init)
        for axis, d in enumerate(loop.shape):
            loop_range = "numba.prange" if axis == 0 and self._parallel_safe(loop) else "range"
            self.emit(f"for i{axis} in {loop_range}({names.dim(d)}):", depth=1 + axis)
        depth = 1 + rank
        loaded = {}
        if not (self.sympy_loops and self._sympy_body(loop, loaded, depth)):
            self._plain_body(loop, loaded, depth)
        self._sinks(loop, loaded, depth)

    def _plain_body(self, loop, loaded, depth):
        """One statement per member, in order."""
        names, plan = self.names, self.plan
        for m in loop.members:
            args = [self._element(a, loop, loaded, depth) for a in value_args(m)]
            code = scalar_code(m, args) if OPS[m.op].kind == "elementwise" else args[0]
            self.emit(f"{names.element(m)} = {code}  # {names.value(m)} = {_describe(m, names)}",
                      depth)
            self._finite_check(m, names.element(m), scalar=True, depth=depth)
            self._store(m, loop, depth)

    def _sympy_body(self, loop, loaded, depth):
        """The members the loop must deliver, from SymPy's cse when that is cheaper
        (see ``loopbody``).  Returns False to fall back to the plain body."""
        names, plan = self.names, self.plan
        sinks_read = {r.args[0] for r in loop.sinks}
        needed = [m for m in loop.members if m in plan.stored or m in sinks_read]
        pending = []
        result = optimized_body(loop, needed, lambda a: self._element(a, loop, loaded, depth,
                                                                     pending))
        for line in pending:                      # loads, whichever body is used
            self.emit(line, depth)
        if result is None:
            return False
        lines, value_of = result
        self.emit("# common subexpressions (SymPy cse)", depth)
        for line in lines:
            self.emit(line, depth)
        for m in needed:
            self.emit(f"{names.element(m)} = {value_of[m]}  # {names.value(m)}", depth)
            self._store(m, loop, depth)
        return True

    def _store(self, m, loop, depth):
        if m in self.plan.stored:
            self.emit(f"{self.names.value(m)}[{self._index(loop.shape, loop.shape)}] = "
                      f"{self.names.element(m)}", depth)

    def _sinks(self, loop, loaded, depth):
        """Accumulate each reduction of the loop's values."""
        names, plan = self.names, self.plan
        for r in loop.sinks:
            x = r.args[0]
            e = self._element(x, loop, loaded, depth)
            acc = names.value(r)
            if plan.shapes[r] != ():
                acc += f"[{self._reduced_index(loop.shape, r)}]"
            self.emit(f"# {names.value(r)} = {_describe(r, names)}", depth)
            if r.op == "sum":
                self.emit(f"{acc} += {e}", depth)
            else:
                cmp = ">" if r.op == "max" else "<"
                self.emit(f"if {e} {cmp} {acc} or {e} != {e}:", depth)
                self.emit(f"{acc} = {e}", depth + 1)
        for r in loop.sinks:
            self._finite_check(r, names.value(r), scalar=plan.shapes[r] == ())

    def _finite_check(self, node, value, scalar, depth=1):
        """With ``check_finite``, record the first node whose value is NaN or Inf."""
        if not self.check_finite or node.dtype.kind != "f":
            return
        k = self.names.index[node]
        self.checked[k] = node
        test = f"not math.isfinite({value})" if scalar else f"not np.isfinite({value}).all()"
        self.emit(f"if flags[0] < 0 and {test}:", depth)
        self.emit(f"flags[0] = {k}", depth + 1)

    def _allocate(self, node, fresh, fill=None):
        """A buffer for `node`: a dead one the plan hands over, else a new one."""
        names = self.names
        donor = self.plan.donor.get(node)
        if donor is None:
            self.emit(f"{names.value(node)} = " + fresh.format(
                shape=names.shape(self.plan.shapes[node]), dtype=node.dtype.name))
            return
        self.emit(f"{names.value(node)} = {names.value(donor)}  # reuses a dead buffer")
        if fill is not None:
            self.emit(f"{names.value(node)}.fill({fill})")

    def _parallel_safe(self, loop):
        """The outer loop may run in parallel (``prange``) when no two iterations write
        the same place: every accumulator is indexed by the outer index, or is a scalar
        sum (which Numba turns into a parallel reduction)."""
        if not self.parallel:
            return False
        for r in loop.sinks:
            if self.plan.shapes[r] == ():
                if r.op != "sum":
                    return False
            elif 0 in r.kwargs["axis"]:
                return False
        return True

    def _element(self, a, loop, loaded, depth, pending=None):
        """The scalar variable holding argument `a` at the loop's index: a member's
        element, a scalar, or a load emitted here (or queued in `pending`)."""
        names, plan = self.names, self.plan
        if plan.loop_of.get(a) is loop:
            return names.element(a)
        if plan.shapes[a] == ():
            return names.value(a)
        if a not in loaded:
            loaded[a] = f"{names.element(a)}"
            line = f"{loaded[a]} = {names.value(a)}[{self._index(plan.shapes[a], loop.shape)}]"
            if pending is None:
                self.emit(line, depth)
            else:
                pending.append(line)
        return loaded[a]

    @staticmethod
    def _index(shape, loop_shape):
        """Index into an array of `shape` broadcast against the loop's shape."""
        lead = len(loop_shape) - len(shape)
        idx = ["0" if (d == 1 and loop_shape[lead + a] != 1) else f"i{lead + a}"
               for a, d in enumerate(shape)]
        return ", ".join(idx)

    @staticmethod
    def _reduced_index(loop_shape, r):
        axis, keepdims = r.kwargs["axis"], r.kwargs["keepdims"]
        idx = [("0" if keepdims else None) if a in axis else f"i{a}"
               for a in range(len(loop_shape))]
        return ", ".join(i for i in idx if i is not None)

    def write(self, backward_nodes):
        for st in self.plan.program:
            node = st.node if isinstance(st, Step) else (st.members + st.sinks)[0]
            if self.backward_start is None and node in backward_nodes:
                self.backward_start = len(self.lines)
                self.emit("# ---- backward ----")
            if isinstance(st, Loop):
                self.loop(st)
            else:
                self.step(st)


def output_expr(node, names, seen):
    """How the kernel returns an output: owned buffers as they are, anything that may
    alias an input, a constant or another output as a copy."""
    v = names.value(node)
    owned = not (node.is_input or node.is_const or node.op in ("transpose", "reshape",
                                                                "expand_dims"))
    if node.shape == () or (owned and node not in seen):
        seen.add(node)
        return v
    return f"np.copy({v})"


def kernel_source(plan, inputs, outputs, names, backward_nodes, options, updates=()):
    """The kernel: every statement, then in-place `updates` ((input, node) pairs), which
    come last so that every output was computed from the old values.  Returns the
    source and, with ``check_finite``, the nodes the kernel checks (by index)."""
    writer = KernelWriter(plan, names, outputs, parallel=options.get("parallel", False),
                          check_finite=options.get("check_finite", False),
                          sympy_loops=options.get("optimize") == "full")
    writer.write(backward_nodes)
    seen = set()
    returns = [output_expr(o, names, seen) for o in outputs]
    if updates:
        writer.emit("# ---- in-place updates ----")
        for i, r in enumerate(returns):
            writer.emit(f"out{i} = {r}")
        returns = [f"out{i}" for i in range(len(returns))]
        for x, new in updates:
            writer.emit(f"_assign({names.inputs[x]}, {names.value(new)})  # update {x.name}")
    body = writer.lines
    scalar_only = all(isinstance(st, Step) and st.kind == "scalar" for st in plan.program)
    params, _, packed = kernel_params(inputs, names, options.get("check_finite", False))
    unpack = [f"    {names.inputs[x]} = scalars[{i}]" for i, x in enumerate(packed)]
    dims = [f"    {n} = {_dim_source(d, names)}" for d, n in names.dims.items()]
    decorator = _decorator(options)
    helpers = _helpers(plan, _decorator(dict(options, parallel=False)))
    helpers = runtime_placeholder(_runtime_names(body)) + "\n\n" + helpers
    if scalar_only and len(body) > CHUNK_STATEMENTS and not writer.check_finite:
        return helpers + _chunked(body, params, returns, decorator, unpack, outputs), {}
    lines = [decorator, f"def _kernel({', '.join(params)}):",
             '    """Forward and backward sweeps, one statement per graph node."""']
    lines += unpack + dims + body + [_return_statement(returns, outputs)]
    return helpers + "\n".join(lines) + "\n", writer.checked


def packs_outputs(outputs):
    """Many float64 scalar results travel back as one array: boxing each float of a
    returned tuple costs Numba and Python more than one array does."""
    return len(outputs) > PACK_SCALARS and all(
        o.shape == () and o.dtype == np.float64 for o in outputs)


def _return_statement(returns, outputs):
    if packs_outputs(outputs):
        return f"    return np.array(({', '.join(returns)},), dtype=np.float64)"
    return f"    return ({', '.join(returns)},)"


#: With more scalar inputs than this, the kernel takes them packed in one array:
#: Numba's dispatch and typing cost grows with every argument.
PACK_SCALARS = 8


def kernel_params(inputs, names, check_finite=False):
    """The kernel's parameters, the arguments ``fn`` passes, and the scalar inputs that
    travel packed in the ``scalars`` array (empty when they are passed one by one).
    With ``check_finite`` the kernel also takes ``flags``, where it records the first
    node that produced a NaN or Inf."""
    scalars = [x for x in inputs if x.shape == ()]
    packed = scalars if len(scalars) > PACK_SCALARS else []
    params = ((["scalars"] if packed else [])
              + [names.inputs[x] for x in inputs if x not in packed]
              + list(names.consts.values()) + (["flags"] if check_finite else []))
    args = ((["np.array((" + ", ".join(names.inputs[x] for x in packed) + ",), np.float64)"]
             if packed else [])
            + [names.inputs[x] for x in inputs if x not in packed]
            + list(names.consts.values()) + (["flags"] if check_finite else []))
    return params, args, packed


def _helpers(plan, decorator):
    """The helper functions made from SymPy formulas that the program calls (the op
    table's own helpers live in the shared runtime)."""
    used = sorted({n.op for n in plan.order
                   if n.op in OPS and OPS[n.op].code is None and helper(n.op)})
    return "".join(f"{decorator}{helper(op).rstrip()}\n\n\n" for op in used)


def _runtime_names(body):
    """The shared-runtime functions the generated statements call."""
    called = set(re.findall(r"\b(_\w+)\(", "\n".join(body)))
    return called & set(runtime_definitions())


def _dim_source(d, names):
    return f"{names.inputs[d.input]}.shape[{d.axis}]"


def _decorator(options):
    flags = [f"cache={options['cache']}", "nogil=True", "error_model='numpy'"]
    if options.get("fastmath"):
        flags.append("fastmath=True")
    if options.get("parallel"):
        flags.append("parallel=True")
    return f"@numba.njit({', '.join(flags)})"


_ASSIGN = re.compile(r"^\s*(v\d+) = ")
_NAME = re.compile(r"\bv\d+\b")
_WORD = re.compile(r"\b[A-Za-z_]\w*\b")


def _chunked(body, params, returns, decorator, unpack, outputs):
    """Split a long straight-line scalar kernel into functions of bounded size that pass
    values through a work array (``work[slot]``).  Each part unpacks the scalar inputs
    it uses."""
    chunks = [body[i:i + CHUNK_STATEMENTS] for i in range(0, len(body), CHUNK_STATEMENTS)]
    defined_in = {}
    for c, chunk in enumerate(chunks):
        for line in chunk:
            m = _ASSIGN.match(line)
            if m:
                defined_in[m.group(1)] = c
    slots = {}
    imports = []
    for c, chunk in enumerate(chunks):
        used = {n for line in chunk for n in _NAME.findall(line.split("#")[0])}
        imports.append(sorted((n for n in used if defined_in.get(n, c) < c),
                              key=lambda n: int(n[1:])))
        for n in imports[-1]:
            slots.setdefault(n, len(slots))
    final = sorted({n for r in returns for n in _NAME.findall(r)}, key=lambda n: int(n[1:]))
    for n in final:
        slots.setdefault(n, len(slots))
    unpack_of = {line.split("=")[0].strip(): line for line in unpack}
    lines = []
    for c, chunk in enumerate(chunks):
        exports = [n for n, s in slots.items() if defined_in.get(n) == c]
        lines += [decorator, f"def _part{c}(work, {', '.join(params)}):"]
        used = {w for line in chunk for w in _WORD.findall(line.split("#")[0])}
        lines += [line for name, line in unpack_of.items() if name in used]
        lines += [f"    {n} = work[{slots[n]}]" for n in imports[c]]
        lines += chunk
        lines += [f"    work[{slots[n]}] = {n}" for n in exports]
        lines += ["    return 0", ""]
    lines += [decorator, f"def _kernel({', '.join(params)}):",
              '    """Forward and backward sweeps, split into parts of bounded size."""',
              f"    work = np.empty({max(len(slots), 1)}, dtype=np.float64)"]
    lines += [f"    _part{c}(work, {', '.join(params)})" for c in range(len(chunks))]
    returned = set(_WORD.findall(" ".join(returns)))
    lines += [line for name, line in unpack_of.items() if name in returned]
    lines += [f"    {n} = work[{slots[n]}]" for n in final]
    lines += [_return_statement(returns, outputs)]
    return "\n".join(lines) + "\n"


def encode_array(arr):
    """A constant array as source text (base64 of its bytes) for a self-contained module."""
    data = base64.b64encode(np.ascontiguousarray(arr).tobytes()).decode()
    return (f"np.frombuffer(base64.b64decode({data!r}), dtype=np.{arr.dtype.name})"
            f".reshape({tuple(arr.shape)})")


def module_source(*, kernel, checker, inputs, outputs, names, single, key, doc_inputs,
                  doc_outputs, interpreted=False, checked=None):
    """The whole generated module."""
    in_names = [names.inputs[x] for x in inputs]
    const_lines = [f"{n} = {encode_array(c.value)}" for c, n in names.consts.items()]
    wraps = []
    for i, o in enumerate(outputs):
        r = f"result[{i}]"
        wraps.append(f"np.{o.dtype.name}({r})" if o.shape == () else r)
    ret = wraps[0] if single else "(" + ", ".join(wraps) + ("," if len(wraps) == 1 else "") + ")"
    if not single and (packs_outputs(outputs) or (
            interpreted and all(o.dtype == np.float64 for o in outputs))):
        ret = "tuple(result)"        # float64 scalars from one array, unboxed in C
    call_args = ", ".join(in_names if interpreted else
                          kernel_params(inputs, names, bool(checked))[1])
    header = [
        '"""Generated by graphc: do not edit.',
        "",
        f"fn({', '.join(in_names)}) -> {'one value' if single else f'tuple of {len(outputs)}'}",
        "",
        "Inputs:",
        *[f"    {line}" for line in doc_inputs],
        "Outputs:",
        *[f"    {line}" for line in doc_outputs],
        '"""',
        "",
        "import base64",
        "import math",
        "",
        "import numba",
        "import numpy as np",
        "",
        f"GRAPHC_KEY = {key!r}",
        "INPUTS = (" + "".join(f"({x.name!r}, {x.dtype.name!r}, {x.shape!r}), " for x in inputs) + ")",
        "OUTPUTS = (" + "".join(f"({o.dtype.name!r}, {o.shape!r}), " for o in outputs) + ")",
    ]
    header += const_lines
    if checked:
        header.append("NONFINITE = {")
        header += [f"    {k}: {v!r}," for k, v in checked.items()]
        header.append("}")
    fn = [f"def fn({', '.join(in_names)}):",
          '    """Run the compiled graph: checks the arguments, then calls the kernel."""',
          f"    {', '.join(in_names)}{',' if len(in_names) == 1 else ''} = "
          f"check_args({', '.join(in_names)})" if in_names else "    pass",
          *(["    flags = np.full(1, -1, dtype=np.int64)"] if checked else []),
          f"    result = _kernel({call_args})",
          *(["    if flags[0] >= 0:",
             "        raise FloatingPointError(f'NaN or Inf first produced by {NONFINITE[flags[0]]}')"]
            if checked else []),
          f"    return {ret}"]
    return "\n".join(header + ["", "", kernel, "", checker, "", _RUNTIME, "", "\n".join(fn)]) + "\n"


#: Helpers the argument checker calls, copied from graphc.signature into every module
#: so that it stands alone.
_RUNTIME = "\n\n".join(inspect.getsource(f) for f in
                        (convert_argument, check_inplace, shape_error))
