"""The kernel record: what a generated kernel is and how it is called.

Both kernel kinds - the straight-line Numba kernel (``emit``) and the register-machine
kernel (``interp``) - produce a ``Kernel``; ``module`` consumes it to write ``fn``, the
placeholders that ``runtime.link`` fills in, and the NaN/Inf report.  The calling
convention (which parameters, what ``fn`` passes, how results come back) is decided
once, here."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: With more scalar inputs than this, the kernel takes them packed in one array:
#: Numba's dispatch and typing cost grows with every argument.
PACK_SCALARS = 8


@dataclass(frozen=True)
class Kernel:
    """A generated kernel.

    * `source`: its definition (and the formula helpers it calls), without placeholders;
    * `params`: its parameter names; `call_args`: the expressions ``fn`` passes for them;
    * `runtime`: the shared-runtime functions it calls (linked after import);
    * `op_functions`: module global -> op whose own implementation it calls (custom ops);
    * `checked`: node index -> node, the nodes a ``check_finite`` kernel reports on
      (then the kernel also takes ``flags``);
    * `returns_array`: whether it returns one float64 array rather than a tuple;
    * `needs_dtype_check`: whether it calls ``dtype_is`` (custom ops' result checks)."""

    source: str
    params: tuple
    call_args: tuple
    runtime: frozenset = frozenset()
    op_functions: dict = field(default_factory=dict)
    checked: dict = field(default_factory=dict)
    returns_array: bool = False
    needs_dtype_check: bool = False


@dataclass(frozen=True)
class CallingConvention:
    """How ``fn`` passes the inputs (and constants) to a straight-line kernel: scalars
    packed in one ``scalars`` array when there are many, and with ``check_finite`` a
    ``flags`` array where the kernel records the first node that produced a NaN/Inf."""

    params: tuple
    call_args: tuple
    packed: tuple          # the scalar inputs that travel in ``scalars``

    @classmethod
    def of(cls, inputs, names, check_finite=False):
        scalars = [x for x in inputs if x.shape == ()]
        packed = scalars if len(scalars) > PACK_SCALARS else []
        passed = [names.inputs[x] for x in inputs if x not in packed]
        consts = list(names.consts.values())
        flags = ["flags"] if check_finite else []
        pack = (["np.array((" + ", ".join(names.inputs[x] for x in packed) + ",), np.float64)"]
                if packed else [])
        return cls(params=tuple((["scalars"] if packed else []) + passed + consts + flags),
                   call_args=tuple(pack + passed + consts + flags), packed=tuple(packed))


def packs_outputs(outputs):
    """Many float64 scalar results travel back as one array: boxing each float of a
    returned tuple costs Numba and Python more than one array does."""
    return len(outputs) > PACK_SCALARS and all(
        o.shape == () and o.dtype == np.float64 for o in outputs)


__all__ = ["PACK_SCALARS", "CallingConvention", "Kernel", "packs_outputs"]
