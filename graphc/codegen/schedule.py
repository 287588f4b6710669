"""Scheduling: which nodes share a fused loop nest, which need a buffer.

The program is a list of statements in execution order:

* ``Loop`` - one loop nest over a shape, computing several elementwise nodes per index
  (held in scalar locals, never in temporaries) and accumulating reductions of them;
* ``Step`` - anything else: a scalar operation, a matrix product (BLAS), a view
  (transpose, reshape) or a size computation.

An elementwise node joins the earliest loop of its shape that comes after all of its
arguments (or holds them), so chains of elementwise work, forward or backward, fuse into
one pass over memory.  A node computed in a loop is stored to a buffer only when
something outside that loop reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..lowering import PerElement, Reduce, View
from ..ops import OPS


def lowering_of(node):
    """The node's lowering record from the op table; an op without one cannot be
    compiled, and says so (it never falls through to another op's code)."""
    lowering = OPS[node.op].lowering
    if lowering is None:
        raise NotImplementedError(f"graphc cannot compile op {node.op!r}: it has no "
                                  "lowering in the op table")
    return lowering


def value_args(node):
    """The arguments whose values a node reads (``broadcast_like`` only reads the first:
    its second argument supplies a shape)."""
    if node.is_input or node.is_const:
        return ()
    lowering = lowering_of(node)
    return lowering.value_args(node) if isinstance(lowering, PerElement) else node.args


@dataclass(eq=False)
class Loop:
    shape: tuple
    pos: int
    members: list = field(default_factory=list)
    sinks: list = field(default_factory=list)


#: Reductions in a 1-D loop go to this many partial results, per chunk of CHUNK
#: elements (see ``emit.KernelWriter._lane_loop``): a multiple of any vector width.
LANES = 256
CHUNK = 64 * LANES

#: With ``parallel=True``, a loop nest runs on several threads only from this many
#: elements on: waking Numba's threads costs tens of microseconds (far more on a busy
#: machine, beside BLAS's spinning threads), more than a smaller loop takes.
PARALLEL_MIN = 1 << 18


def lane_sums(loop):
    """Whether the loop's reductions are computed in partial results: a 1-D loop (the
    only axis reduced) with reductions, whose sequential accumulation would keep LLVM
    from vectorising it."""
    return bool(loop.sinks) and len(loop.shape) == 1 and loop.shape[0] != 1


def loop_size(shape):
    """The number of elements of a loop nest: an int when every size is static, else
    None."""
    size = 1
    for d in shape:
        if not isinstance(d, int):
            return None
        size *= d
    return size


def parallel_safe(loop, shapes):
    """Whether the outer loop may run in parallel (``prange``): no two iterations write
    the same place.  A loop with partial results (``lane_sums``) runs its chunks in
    parallel, each with its own partials; otherwise every accumulator must be indexed
    by the outer index, or be a scalar the reduction's lowering says Numba can combine
    across threads (``Reduce.parallel_scalar``)."""
    if lane_sums(loop):
        return True
    for r in loop.sinks:
        if shapes[r] == ():
            if not lowering_of(r).parallel_scalar:
                return False
        elif 0 in r.kwargs["axis"]:
            return False
    return True


@dataclass(eq=False)
class Step:
    """One statement outside loops: `lowering` says what kind (a scalar PerElement,
    a View, a Call, ObjMode or Size)."""
    node: object
    pos: int
    lowering: object


@dataclass
class Plan:
    program: list
    shapes: dict          # node -> symbolic shape
    loop_of: dict         # loop member -> Loop
    stored: set           # loop members that need a buffer
    order: list           # every node, topologically
    donor: dict = field(default_factory=dict)   # node -> dead node whose buffer it takes


def schedule(outputs, order, shapes):
    program, pos_of, loop_of = [], {}, {}
    loops_by_shape: dict = {}

    def find_loop(shape, args):
        latest = max((pos_of[a] for a in args), default=-1)
        for loop in loops_by_shape.get(shape, ()):
            if loop.pos < latest:
                continue
            if all(pos_of[a] < loop.pos or loop_of.get(a) is loop for a in args):
                return loop
        loop = Loop(shape, len(program))
        program.append(loop)
        loops_by_shape.setdefault(shape, []).append(loop)
        return loop

    for node in order:
        if node.is_input or node.is_const:
            pos_of[node] = -1
            continue
        shape, lowering = shapes[node], lowering_of(node)
        if isinstance(lowering, PerElement) and shape != ():
            loop = find_loop(shape, value_args(node))
            loop.members.append(node)
            loop_of[node] = loop
            pos_of[node] = loop.pos
        elif isinstance(lowering, Reduce):
            x = node.args[0]
            loop = find_loop(shapes[x], [x])
            loop.sinks.append(node)
            pos_of[node] = loop.pos
        else:
            pos_of[node] = len(program)
            program.append(Step(node, len(program), lowering))

    # A loop member needs a buffer when something outside its loop reads it.
    home = dict(loop_of)
    home.update({r: loop for loop in program if isinstance(loop, Loop) for r in loop.sinks})
    stored = {o for o in outputs if o in loop_of}
    for node in order:
        for a in value_args(node):
            if a in loop_of and home.get(node) is not loop_of[a]:
                stored.add(a)
    plan = Plan(program, shapes, loop_of, stored, order)
    plan.donor = plan_buffers(plan, outputs, pos_of)
    return plan


def plan_buffers(plan, outputs, pos_of):
    """Let an intermediate reuse the buffer of one whose value is dead.

    A buffer is dead after the last statement that reads it (or reads a view of it);
    an output's buffer never dies.  A new loop buffer or accumulator takes a dead
    buffer of the same shape and dtype if there is one."""
    never = float("inf")
    last_use, root = {}, {}
    for node in plan.order:
        if node.args and isinstance(OPS[node.op].lowering, View) and node.args[0] in root:
            root[node] = root[node.args[0]]
        elif not (node.is_input or node.is_const) and plan.shapes[node] != ():
            root[node] = node
        for a in value_args(node):
            last_use[a] = max(last_use.get(a, -1), pos_of[node])
    for node in reversed(plan.order):          # a view keeps its base alive
        if node in root and root[node] is not node:
            base = root[node]
            last_use[base] = max(last_use.get(base, -1), last_use.get(node, -1))
    for o in outputs:
        if o in root:
            last_use[root[o]] = never
    pool: dict = {}
    donor = {}
    for st in plan.program:
        if isinstance(st, Step):
            fresh = not isinstance(st.lowering, (View, PerElement))   # a new array
            new = [st.node] if fresh and plan.shapes[st.node] != () else []
            takers = []
        else:
            new = [m for m in st.members if m in plan.stored]
            new += [r for r in st.sinks if plan.shapes[r] != ()]
            takers = new
        for node in new:
            key = (plan.shapes[node], node.dtype)
            free = pool.get(key, [])
            if node in takers:
                for i, (dead_after, holder) in enumerate(free):
                    if dead_after < st.pos:
                        donor[node] = holder
                        del free[i]
                        break
            pool.setdefault(key, []).append((last_use.get(node, never), node))
    return donor
