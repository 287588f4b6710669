"""A register machine for large scalar graphs.

Numba's front end costs about a millisecond per generated statement, so a scalar graph
of thousands of nodes (a deep neuron chain, a random DAG) would spend seconds to minutes
in compilation as straight-line code.  Instead such a graph is encoded as an
instruction table - (opcode, destination, arguments) over a register file - and run by
one interpreter loop, generated from the op table's scalar code templates and compiled
once per graphc version (then loaded from Numba's disk cache).  Compiling a graph is
then just encoding it, and a call costs a few nanoseconds per instruction.
"""

from __future__ import annotations

import base64
import functools

import numpy as np

from ..lowering import PerElement
from ..ops import OPS
from .kernel import Kernel
from .scalar import template
from .schedule import Step

#: Programs with at least this many scalar statements run on the interpreter.  Below
#: it, straight-line code compiles in under ~3 s and runs about 2x faster per call.
MIN_STATEMENTS = 2500

#: Opcodes: frequent ops first (the dispatch is an if-chain); then the table's others.
_FIRST = ["mul", "add", "sub", "neg", "sigmoid", "square", "div", "tanh", "exp"]


def _copies(op):
    """Ops whose scalar value is their first argument's (astype, broadcasts)."""
    return isinstance(op.lowering, PerElement) and op.lowering.identity


@functools.cache
def opcodes():
    """The ops the interpreter runs: per-element ops with a code template in the op
    table (the first few by frequency), then ``copy`` for the identities."""
    rest = sorted(n for n, op in OPS.items() if isinstance(op.lowering, PerElement)
                  and op.lowering.code is not None and not _copies(op) and n not in _FIRST
                  and _takes_floats(op))
    return tuple(_FIRST + rest) + ("copy",)


def _takes_floats(op):
    """Whether the op is defined on float64 registers (bitwise ops are not, and a
    conversion's template depends on its dtype)."""
    if "{dtype}" in op.lowering.code:
        return False
    try:
        op.dtype([np.dtype(np.float64)] * op.arity)
    except TypeError:
        return False
    return True


def supports(plan):
    """Whether every statement is a scalar op the interpreter knows, on values its
    float64 registers hold exactly (floats and bools, not integers)."""
    known = set(opcodes())
    return (all(n.dtype.kind in "fb" for n in plan.order)
            and all(isinstance(st, Step) and isinstance(st.lowering, PerElement)
                    and (st.node.op in known or _copies(OPS[st.node.op]))
                    for st in plan.program))


def interpreter_source(decorator):
    """``_run(code, regs)``: execute an instruction table over a register file (the
    helpers its templates call live beside it in the shared runtime)."""
    lines = [decorator, "def _run(code, regs):",
              '    """Instruction k computes regs[code[k, 1]] from regs[code[k, 2:5]]."""',
              "    for k in range(code.shape[0]):",
              "        op = code[k, 0]",
              "        a = regs[code[k, 2]]",
              "        b = regs[code[k, 3]]",
              "        c = regs[code[k, 4]]"]
    for i, name in enumerate(opcodes()):
        expr = "a" if name == "copy" else template(name, in_loop=False).format("a", "b", "c")
        lines.append(f"        {'if' if i == 0 else 'elif'} op == {i}:  # {name}")
        lines.append(f"            regs[code[k, 1]] = {expr}")
    lines.append("    return 0")
    return "\n".join(lines) + "\n"


def encode(plan, inputs, outputs, names):
    """The instruction table, the constants, and the register of each output.

    Registers: the inputs first (in call order), then constants, then one per node."""
    slots = {x: i for i, x in enumerate(inputs)}
    consts = []
    for node in plan.order:
        if node.is_const and node not in slots:
            slots[node] = len(slots)
            consts.append(float(node.value))
    index = {name: i for i, name in enumerate(opcodes())}
    code, listing = [], []
    for st in plan.program:
        node = st.node
        slots[node] = len(slots)
        op = "copy" if _copies(OPS[node.op]) else node.op
        args = [slots[a] for a in node.args[:1 if op == "copy" else 3]]
        code.append([index[op], slots[node]] + (args + [0, 0, 0])[:3])
        listing.append(f"r{slots[node]} = {op}({', '.join(f'r{a}' for a in args)})"
                       f"  # {names.value(node)}")
    table = np.asarray(code, dtype=np.int32).reshape(-1, 5)
    return table, np.asarray(consts, dtype=np.float64), [slots[o] for o in outputs], \
        len(slots), listing


def module_kernel(plan, inputs, outputs, names):
    """The ``_kernel`` of an interpreted graph module: plain Python around ``_run``,
    which returns the output registers as one float64 array."""
    table, consts, out_slots, n_regs, listing = encode(plan, inputs, outputs, names)
    n_in, n_c = len(inputs), len(consts)
    params = [names.inputs[x] for x in inputs]
    data = base64.b64encode(table.tobytes()).decode()
    lines = [
        "# The graph as an instruction table for the shared interpreter `_run`:",
        *[f"#   {line}" for line in listing],
        f"CODE = np.frombuffer(base64.b64decode({data!r}), dtype=np.int32).reshape({table.shape})",
        f"CONSTS = np.array({consts.tolist()!r}, dtype=np.float64)",
        f"OUT = np.array({out_slots!r}, dtype=np.int64)",
        "",
        "",
        f"def _kernel({', '.join(params)}):",
        '    """Load the registers, run the instruction table, read the outputs."""',
        f"    regs = np.empty({n_regs}, dtype=np.float64)",
        f"    regs[:{n_in}] = ({', '.join(params)}{',' if n_in == 1 else ''})" if n_in else "",
        f"    regs[{n_in}:{n_in + n_c}] = CONSTS" if n_c else "",
        "    _run(CODE, regs)",
        "    return regs.take(OUT)",
    ]
    source = "\n".join(line for line in lines if line is not None) + "\n"
    return Kernel(source=source, params=tuple(params), call_args=tuple(params),
                  runtime=frozenset({"_run"}), returns_array=True)
