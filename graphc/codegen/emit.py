"""Emission: a scheduled program becomes the Numba kernel's source - forward and
backward statements, one per node, each with a comment naming the node it computes.
(``graphc.codegen.module`` wraps it into the module users import.)"""

from __future__ import annotations


import numpy as np

from ..autodiff import ADJOINT_OF
from ..lowering import Call, Code, ObjMode, PerElement, Size, View
from ..ops import OPS
from ..shapes import format_shape
from .kernel import CallingConvention, Kernel, packs_outputs
from .linking import called_names
from .loopbody import optimized_body
from .names import LITERAL_DTYPES, typed
from .runtime import definitions as runtime_definitions
from .scalar import helper, scalar_code
from .schedule import (
    CHUNK,
    LANES,
    PARALLEL_MIN,
    Loop,
    Step,
    lane_sums,
    loop_size,
    lowering_of,
    parallel_safe,
    value_args,
)

def _describe(node, names):
    """The comment that ties a statement to its graph node, ``add(v3, b)``, and for a
    backward statement the forward node whose adjoint it is (autodiff records it):
    ``mul(v34, v35)  [∂/∂v12, adjoint of sub(v10, v11)]``."""
    text = _call_text(node, names)
    forward = ADJOINT_OF.get(node)
    if forward is None:
        return text
    if forward.is_input:
        return f"{text}  [∂/∂{forward.name}]"
    if forward in names.index:
        return f"{text}  [∂/∂{names.value(forward)}, adjoint of {_call_text(forward, names)}]"
    return text


def _call_text(node, names):
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
        self.linked = {}           # module global -> op whose implementation it is
        self.needs_dtype_check = False
        self.lines = []
        self.backward_start = None

    def emit(self, line, depth=1):
        self.lines.append("    " * depth + line)

    # -- steps ----------------------------------------------------------------
    def step(self, st):
        node, names = st.node, self.names
        target = names.value(node)
        comment = f"  # {_describe(node, names)}"
        lowering = st.lowering
        if isinstance(lowering, PerElement):        # a scalar: plain numbers in a kernel
            args = [names.value(a) for a in lowering.value_args(node)]
            code = args[0] if lowering.identity else scalar_code(node, args, in_loop=False)
            self.emit(f"{target} = {code}{comment}")
            self._finite_check(node, target, scalar=True)
        elif isinstance(lowering, Call):
            args = [self._call_operand(a, node.dtype, lowering) for a in node.args]
            self.emit(f"{target} = {self._function(node, lowering)}({', '.join(args)}){comment}")
            self._check_result(node, target)
            self._finite_check(node, target, scalar=node.shape == ())
        elif isinstance(lowering, ObjMode):
            self._objmode_call(node, target, comment)
            self._finite_check(node, target, scalar=node.shape == ())
        elif isinstance(lowering, Size):
            x = node.args[0]
            dims = [names.dim(self.plan.shapes[x][a]) for a in node.kwargs["axis"]]
            convert = "float" if node.dtype == np.float64 else f"np.{node.dtype.name}"
            self.emit(f"{target} = {convert}({' * '.join(dims) or '1'}){comment}")
        elif isinstance(lowering, View):
            self._view(node, lowering, target, comment)
        elif isinstance(lowering, Code):
            shape = names.shape(self.plan.shapes[node])
            lines = lowering.lines(target, [names.value(a) for a in node.args], node, shape)
            self.emit(f"{lines[0]}{comment}")
            for line in lines[1:]:
                self.emit(line)
            self._finite_check(node, target, scalar=node.shape == ())
        else:
            raise NotImplementedError(f"graphc cannot compile op {node.op!r}: its lowering "
                                      f"{type(lowering).__name__} is not a statement")

    def _call_operand(self, a, dtype, lowering):
        name = self.names.value(a)
        if lowering.cast_operands and a.shape != () and a.dtype != dtype:
            return f"{name}.astype(np.{dtype.name})"
        if _strided_view(a):
            return f"np.ascontiguousarray({name})"   # BLAS takes rows or columns only
        return name

    def _function(self, node, lowering):
        """The name a Call statement calls: a shared-runtime function (``_dot``), or a
        custom op's own implementation, linked into the module after import."""
        if lowering.function:
            return lowering.function
        return self._link(node.op)

    def _link(self, op_name):
        """The module global through which the kernel calls an op's own implementation."""
        name = f"_op_{op_name}"
        self.linked[name] = op_name
        return name

    def _objmode_call(self, node, target, comment):
        """The op's NumPy implementation, called in object mode; it checks its result's
        shape and dtype (the op table's impl does, on every backend)."""
        names = self.names
        fn = self._link(node.op)
        args = ", ".join(names.value(a) for a in node.args)
        self.emit(f"with numba.objmode({target}={_numba_type(node)!r}):{comment}")
        self.emit(f"{target} = {fn}({args})", depth=2)

    def _check_result(self, node, target):
        """A custom implementation's result must have the shape the op's shape rule
        gave: checked in compiled code, so a wrong one is an error, never a bad read."""
        if OPS[node.op].kind != "custom":
            return
        what = f"custom op {node.op!r}: its Numba implementation returned"
        if node.shape != ():
            shape = self.names.shape(self.plan.shapes[node])
            self.emit(f"if {target}.shape != {shape}:")
            message = f"{what} an array of the wrong shape (expected {format_shape(node.shape)})"
            self.emit(f"raise ValueError({message!r})", depth=2)
        self.needs_dtype_check = True
        self.emit(f"if not dtype_is({target}, np.{node.dtype.name}(0)):")
        message = f"{what} data of the wrong dtype (expected {node.dtype.name})"
        self.emit(f"raise TypeError({message!r})", depth=2)

    def _view(self, node, lowering, target, comment):
        names = self.names
        (x,) = node.args
        xv = names.value(x)
        out_shape = names.shape(self.plan.shapes[node])
        if lowering.indexes:          # the expression is an index: any result shape
            expr = lowering.expression(xv, node, out_shape)
        elif node.shape == ():        # scalars are plain numbers in a kernel
            expr = xv if x.shape == () else f"{xv}[{', '.join('0' * x.ndim)}]"
        elif x.shape == ():
            expr = f"np.full({out_shape}, {xv}, dtype=np.{node.dtype.name})"
        else:
            expr = lowering.expression(xv, node, out_shape)
        self.emit(f"{target} = {expr}{comment}")

    # -- loops ----------------------------------------------------------------
    def loop(self, loop):
        names, plan = self.names, self.plan
        members = ", ".join(names.value(m) for m in loop.members + loop.sinks)
        self.emit(f"# fused loop over {names.shape(loop.shape)}: {members}")
        for m in loop.members:
            if m in plan.stored:
                self._allocate(m, "np.empty({shape}, dtype=np.{dtype})")
        for r in loop.sinks:
            init = lowering_of(r).start(r.dtype)
            if plan.shapes[r] == ():
                self.emit(f"{names.value(r)} = {typed(init, r.dtype)}")
            else:
                self._allocate(r, f"np.full({{shape}}, {init}, dtype=np.{{dtype}})", init)
        parallel = self.parallel and parallel_safe(loop, plan.shapes)
        if lane_sums(loop):
            self._lane_loop(loop, parallel)
        else:
            self._choose(loop, parallel, self._nest)
        for r in loop.sinks:
            self._finite_check(r, names.value(r), scalar=plan.shapes[r] == ())

    def _choose(self, loop, parallel, nest):
        """`nest(loop, prange, depth)`: with ``parallel``, the outer loop is a
        ``numba.prange`` only when the loop nest has enough elements to pay for waking
        the threads (PARALLEL_MIN; decided here when the sizes are static, else by a
        test in the kernel, which then holds the nest twice)."""
        if not parallel:
            nest(loop, False, 1)
            return
        size = loop_size(loop.shape)
        if isinstance(size, int):
            nest(loop, size >= PARALLEL_MIN, 1)
            return
        sizes = " * ".join(self.names.dim(d) for d in loop.shape if d != 1)
        self.emit(f"if {sizes} >= {PARALLEL_MIN}:  # enough work for the threads")
        nest(loop, True, 2)
        self.emit("else:")
        nest(loop, False, 2)

    def _nest(self, loop, prange, depth):
        """The loop nest (the outer loop a ``prange`` if `prange`) and its body."""
        names = self.names
        for axis, d in enumerate(loop.shape):
            if d == 1:                  # a size-1 axis needs no loop, only its index
                self.emit(f"i{axis} = 0", depth)
                continue
            loop_range = "numba.prange" if axis == 0 and prange else "range"
            self.emit(f"for i{axis} in {loop_range}({names.dim(d)}):", depth)
            depth += 1
        self._body(loop, depth)

    def _body(self, loop, depth, acc_of=None):
        loaded = {}
        if not (self.sympy_loops and self._sympy_body(loop, loaded, depth)):
            self._plain_body(loop, loaded, depth)
        self._sinks(loop, loaded, depth, acc_of)

    def _lane_loop(self, loop, parallel):
        """A 1-D loop with reductions, written so that LLVM can vectorise it without
        reassociating anything: the index range is cut into chunks of CHUNK elements
        and each chunk into blocks of LANES; element i is folded into partial result
        i % LANES of its chunk (the innermost loop, over a block, carries no
        dependence from one element to the next), the partial results are folded in
        order into the chunk's result, and the chunk results in order into the
        accumulator.  The order is fixed by the index alone, so the result is the same
        with and without ``parallel`` (where the chunks run in a ``prange``) and on any
        number of threads; it differs from the sequential sum in the last bits, as
        NumPy's pairwise sum does (each partial sums about n/LANES elements: the error
        bound is smaller than the sequential one).  NaN and Inf propagate as in any
        sum; max and min fold the same way."""
        names, plan = self.names, self.plan
        (d,) = loop.shape
        n = names.dim(d)
        k = names.index[loop.sinks[0]]
        chunks, chunk = f"n{k}c", f"i{k}c"
        self.emit(f"# reductions in {LANES} partial results per chunk of {CHUNK} "
                  "(a vectorisable loop; a fixed order, parallel or not)")
        self.emit(f"{chunks} = ({n} + {CHUNK - 1}) // {CHUNK}")
        for r in loop.sinks:
            self.emit(f"p{names.index[r]} = np.empty({chunks}, dtype=np.{r.dtype.name})")

        def nest(loop, prange, depth):
            loop_range = "numba.prange" if prange else "range"
            self.emit(f"for {chunk} in {loop_range}({chunks}):", depth)
            for r in loop.sinks:
                start = lowering_of(r).start(r.dtype)
                self.emit(f"l{names.index[r]} = np.full({LANES}, {start}, "
                          f"dtype=np.{r.dtype.name})", depth + 1)
            self.emit(f"for i0b in range({chunk} * {CHUNK}, min({n}, {chunk} * {CHUNK} + "
                      f"{CHUNK}), {LANES}):", depth + 1)
            self.emit(f"for i0l in range(min({LANES}, {n} - i0b)):", depth + 2)
            self.emit("i0 = i0b + i0l", depth + 3)
            self._body(loop, depth + 3, {r: f"l{names.index[r]}[i0l]" for r in loop.sinks})
            for r in loop.sinks:
                q = names.index[r]
                self.emit(f"a{q} = {typed(lowering_of(r).start(r.dtype), r.dtype)}",
                          depth + 1)
                self.emit(f"for i0l in range({LANES}):", depth + 1)
                for offset, line in lowering_of(r).accumulate(f"a{q}", f"l{q}[i0l]"):
                    self.emit(line, depth + 2 + offset)
                self.emit(f"p{q}[{chunk}] = a{q}", depth + 1)

        self._choose(loop, parallel, nest)
        self.emit(f"for {chunk} in range({chunks}):")
        for r in loop.sinks:
            acc = names.value(r) + ("[0]" if plan.shapes[r] != () else "")
            for offset, line in lowering_of(r).accumulate(acc, f"p{names.index[r]}[{chunk}]"):
                self.emit(line, 2 + offset)

    def _plain_body(self, loop, loaded, depth):
        """One statement per member, in order."""
        names = self.names
        for m in loop.members:
            args = [self._element(a, loop, loaded, depth) for a in value_args(m)]
            if lowering_of(m).identity:     # a broadcast: the same element, no statement
                loaded[m] = args[0]
                self.emit(f"# {names.value(m)} = {_describe(m, names)} is {args[0]}", depth)
            else:
                code = scalar_code(m, args)
                self.emit(f"{names.element(m)} = {code}  # {names.value(m)} = "
                          f"{_describe(m, names)}", depth)
                self._finite_check(m, names.element(m), scalar=True, depth=depth)
            self._store(m, loop, depth, loaded.get(m))

    def _sympy_body(self, loop, loaded, depth):
        """The members the loop must deliver, from SymPy's cse when that is cheaper
        (see ``loopbody``).  Returns False to fall back to the plain body."""
        names, plan = self.names, self.plan
        sinks_read = {r.args[0] for r in loop.sinks}
        needed = [m for m in loop.members if m in plan.stored or m in sinks_read]
        pending = []
        result = optimized_body(loop, needed, lambda a: self._element(a, loop, loaded, depth,
                                                                     pending),
                                number=self._number_printer(needed))
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

    def _number_printer(self, needed):
        """How SymPy's numbers are printed in a loop whose float values all have one
        dtype that Python literals lack (float32): as typed constants; else None
        (plain literals)."""
        dtypes = {m.dtype for m in needed if m.dtype.kind == "f"}
        if len(dtypes) != 1 or dtypes <= set(LITERAL_DTYPES):
            return None
        (dtype,) = dtypes
        return lambda value: self.names.constant(value, dtype)

    def _store(self, m, loop, depth, element=None):
        """Write member `m`'s element (variable `element`, by default its own) to its
        buffer, if the plan stores it."""
        if m in self.plan.stored:
            self.emit(f"{self.names.value(m)}[{self._index(loop.shape, loop.shape)}] = "
                      f"{element or self.names.element(m)}", depth)

    def _sinks(self, loop, loaded, depth, acc_of=None):
        """Accumulate each reduction of the loop's values (into ``acc_of[r]`` when
        given: a partial result)."""
        names, plan = self.names, self.plan
        for r in loop.sinks:
            x = r.args[0]
            e = self._element(x, loop, loaded, depth)
            acc = names.value(r)
            if acc_of:
                acc = acc_of[r]
            elif plan.shapes[r] != ():
                acc += f"[{self._reduced_index(loop.shape, r)}]"
            self.emit(f"# {names.value(r)} = {_describe(r, names)}", depth)
            for offset, line in lowering_of(r).accumulate(acc, e):
                self.emit(line, depth + offset)

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

    def _element(self, a, loop, loaded, depth, pending=None):
        """The scalar variable holding argument `a` at the loop's index: a member's
        element, a scalar, or a load emitted here (or queued in `pending`)."""
        names, plan = self.names, self.plan
        if a in loaded:                 # loaded, or a broadcast's source element
            return loaded[a]
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


def _strided_view(node):
    """Whether `node` is a view of a slice (``x[:, :3]``, or its transpose): its layout
    is neither C nor Fortran order."""
    while node.args and isinstance(OPS[node.op].lowering, View):
        if OPS[node.op].lowering.indexes:
            return True
        node = node.args[0]
    return False


def _numba_type(node):
    """The Numba type of a node's value, as ``numba.objmode`` takes it."""
    name = "boolean" if node.dtype.kind == "b" else node.dtype.name
    return name if node.shape == () else f"{name}[{', '.join(':' * node.ndim)}]"


def output_expr(node, names, seen):
    """How the kernel returns an output: owned buffers as they are, anything that may
    alias an input, a constant or another output as a copy."""
    v = names.value(node)
    owned = not (node.is_input or node.is_const
                 or isinstance(OPS[node.op].lowering, View))
    if node.shape == () or (owned and node not in seen):
        seen.add(node)
        return v
    return f"np.copy({v})"


def kernel_source(plan, inputs, outputs, names, backward_nodes, options, updates=()):
    """The kernel: every statement, then in-place `updates` ((input, node) pairs), which
    come last so that every output was computed from the old values.  Returns the
    ``Kernel`` record."""
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
    convention = CallingConvention.of(inputs, names, options.get("check_finite", False))
    unpack = [f"    {names.inputs[x]} = scalars[{i}]" for i, x in enumerate(convention.packed)]
    dims = [f"    {n} = {_dim_source(d, names)}" for d, n in names.dims.items()]
    lines = [_decorator(options), f"def _kernel({', '.join(convention.params)}):",
             '    """Forward and backward sweeps, one statement per graph node."""']
    typed_constants = ["    " + line for line in names.typed_lines()]
    lines += unpack + dims + typed_constants + body + [_return_statement(returns, outputs)]
    helpers = _helpers(plan, _decorator(dict(options, parallel=False)))
    return Kernel(source=helpers + "\n".join(lines) + "\n", params=convention.params,
                  call_args=convention.call_args,
                  runtime=called_names(body, runtime_definitions()),
                  op_functions=dict(writer.linked), checked=writer.checked,
                  returns_array=packs_outputs(outputs),
                  needs_dtype_check=writer.needs_dtype_check)


def _return_statement(returns, outputs):
    """The kernel's last line."""
    if packs_outputs(outputs):
        return f"    return np.array(({', '.join(returns)},), dtype=np.float64)"
    return f"    return ({', '.join(returns)},)"


def _helpers(plan, decorator):
    """The helper functions made from SymPy formulas that the program calls (the op
    table's own helpers live in the shared runtime)."""
    used = sorted({n.op for n in plan.order
                   if n.args and _formula_helper_needed(OPS[n.op]) and helper(n.op)})
    return "".join(f"{decorator}{helper(op).rstrip()}\n\n\n" for op in used)


def _formula_helper_needed(op):
    """Per-element ops without a code template (made from SymPy formulas) get their
    helper generated into the module."""
    return isinstance(op.lowering, PerElement) and op.lowering.code is None


def _dim_source(d, names):
    return f"{names.inputs[d.input]}.shape[{d.axis}]"


#: Numba's parallel options for ``parallel=True`` kernels: only the loops emitted as
#: ``numba.prange`` run in parallel (Numba would otherwise turn every ``np.full``,
#: ``fill`` and array expression into a parallel region of its own).
_PRANGE_ONLY = {"comprehension": False, "reduction": False, "inplace_binop": False,
                "setitem": False, "numpy": False, "stencil": False, "fusion": False,
                "prange": True}


def _decorator(options):
    flags = [f"cache={options['cache']}", "nogil=True", "error_model='numpy'"]
    if options.get("fastmath"):
        flags.append("fastmath=True")
    if options.get("parallel"):       # explicit prange loops only: no parfors made from
        flags.append(f"parallel={_PRANGE_ONLY}")    # allocations and array expressions
    return f"@numba.njit({', '.join(flags)})"
