"""``gc.compile``, ``Function`` and ``gc.export``.

compile: lower the graph, schedule it, emit one module (kernel + argument checker +
``fn``), and import it through the disk cache.  A Function is a thin handle on that
module: calling it calls the module's ``fn``.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import re
import warnings
from collections import namedtuple
from pathlib import Path

import numpy as np

from .api import astype
from . import codesize
from .autodiff import GRADIENT_OF
from .codegen import cache, interp, runtime
from .codegen.emit import kernel_source
from .codegen.names import Names
from .codegen.module import module_source
from .codegen.schedule import schedule
from .graph import Expr, expr_list, inputs_of, tensor, toposort
from .lowering import ObjMode
from .ops import OPS
from .passes import optimize
from .passes.lower import lower
from .shapes import format_shape
from .signature import Signature, check_inputs

_OPTIMIZE_LEVELS = ("full", "fast", "none")
_memo: dict = {}


class Function:
    """A compiled graph.  Call it with one argument per input (positionally or by
    name); it returns a tuple of NumPy values (one value if compiled with a single
    output).  ``source`` is the module that was compiled, followed by the loop and the
    body of each ``gc.scan`` it calls (``module_source``: the module alone)."""

    def __init__(self, inputs, outputs, single, module, source, key, options):
        self.inputs, self.outputs, self.single = list(inputs), list(outputs), single
        self.module, self.module_source, self.key, self.options = module, source, key, options
        self.source = source + _called_op_sources(module)
        self._fn = module.fn

    def __call__(self, *args, **kwargs):
        return self._fn(*args, **kwargs)

    @property
    def kernel(self):
        """The Numba dispatcher of the forward+backward kernel."""
        return self.module._kernel

    def __repr__(self):
        ins = ", ".join(f"{x.name}: {x.dtype.name}{format_shape(x.shape)}" for x in self.inputs)
        return f"<graphc.Function ({ins}) -> {len(self.outputs)} output(s)>"

    def __reduce__(self):
        """Pickle the generated source, key, options and input/output description —
        no graph objects — so a Function can be sent to another process (a Dask
        worker); see `_rebuild_function`."""
        return _rebuild_function, (_pickle_payload(self),)


def _called_op_sources(module):
    """The source of the ops whose own compiled code the module calls and that have
    one to show (a ``gc.scan``'s loop and body), appended to ``Function.source``."""
    parts = []
    for op_name in dict.fromkeys(getattr(module, "OP_FUNCTIONS", {}).values()):
        text = getattr(OPS.get(op_name), "source", None)
        if text:
            parts.append(f"\n\n{text}")
    return "".join(parts)


def compile(inputs, outputs, *, updates=None, optimize="full", parallel=False,
            fastmath=False, check_finite=False):
    """Compile `outputs` (an Expr or a list) as a function of `inputs` (a list of
    inputs; their order is the call's argument order).

    ``updates={input: expr}`` makes the function also write each expr into its input's
    array, in place, after computing the outputs from the old values: how an optimizer
    step updates parameters without a round trip through Python.

    ``check_finite=True`` makes every call check each node's value and raise
    ``FloatingPointError`` naming the first node, forward or backward, that produced a
    NaN or Inf (its op, its arguments' shapes); off by default, and then it costs
    nothing."""
    if isinstance(inputs, Expr):
        inputs = [inputs]
    inputs = list(inputs)
    single, outs = expr_list(outputs, "compile", "outputs")
    update_pairs = _check_updates(updates, inputs)
    if optimize not in _OPTIMIZE_LEVELS:
        raise ValueError(f"compile: optimize must be one of {_OPTIMIZE_LEVELS}, got {optimize!r}")
    options = {"optimize": optimize, "parallel": bool(parallel), "fastmath": bool(fastmath),
               "single": single, "updates": [inputs.index(x) for x, _ in update_pairs],
               "check_finite": bool(check_finite)}
    check_inputs(inputs)
    _warn_objmode(outs + [new for _, new in update_pairs])
    key = cache.graph_key(inputs, outs + [new for _, new in update_pairs], options)
    hit = _memo.get(key)
    if hit is not None:
        return Function(inputs, outs, single, hit[0], hit[1], key, options)
    module = cache.load(key)
    if module is not None:
        source = Path(module.__file__).read_text(encoding="utf-8")
    else:
        module, source = cache.store_and_import(
            key, lambda cache: generate_source(inputs, outs, single, key, options, cache,
                                               update_pairs))
    runtime.link(module)
    _memo[key] = (module, source)
    return Function(inputs, outs, single, module, source, key, options)


def _warn_objmode(outputs):
    """One warning per op that compiled code can only run through numba.objmode."""
    slow = sorted({n.op for n in toposort(outputs)
                   if n.args and isinstance(OPS[n.op].lowering, ObjMode)})
    for op_name in slow:
        warnings.warn(f"op {op_name!r} has no Numba implementation: compiled code calls its "
                      "NumPy implementation through numba.objmode (correct, slower; give "
                      "gc.custom_op an njit= implementation)", stacklevel=3)


def generate_source(inputs, outputs, single, key, options, cache=True, updates=()):
    """The module for a graph: lowering, scheduling and emission."""
    roots = _forward_roots(outputs)
    n_out, n_up = len(outputs), len(updates)
    rewritten = lower(optimize(list(outputs) + [new for _, new in updates] + roots,
                               options["optimize"]))
    everything, forward_roots = rewritten[:n_out + n_up], rewritten[n_out + n_up:]
    lowered, new_values = everything[:n_out], everything[n_out:]
    signature = Signature.build(inputs, everything)
    forward = set(toposort(forward_roots))
    backward = {n for n in toposort(everything) if n not in forward} if roots else set()
    # the forward sweep first, then the backward one: still a topological order, since
    # no forward node depends on a backward one
    order = toposort(everything)
    order = [n for n in order if n not in backward] + [n for n in order if n in backward]
    plan = schedule(everything, order, signature.shapes)
    names = Names(plan, inputs)
    interpreted = (interp.supports(plan) and len(plan.program) >= interp.MIN_STATEMENTS
                   and not options["check_finite"])
    if not interpreted:
        codesize.check(plan)        # straight-line code past the limit: point to gc.scan
    if interpreted:
        kernel = interp.module_kernel(plan, inputs, lowered, names)
    else:
        kernel = kernel_source(plan, inputs, lowered, names, backward, dict(options, cache=cache),
                               [(x, new) for (x, _), new in zip(updates, new_values)])
    checker = signature.checker_source(names.inputs, inplace={x for x, _ in updates})
    return module_source(
        kernel=kernel, checker=checker, inputs=inputs, outputs=lowered, names=names,
        single=single, key=key,
        reports={k: _node_report(node, names, node in backward)
                 for k, node in kernel.checked.items()},
        doc_inputs=[f"{x.name}: {x.dtype.name} {format_shape(x.shape)}" for x in inputs],
        doc_outputs=[f"[{i}] {o.dtype.name} {format_shape(o.shape)}{_gradient_note(o, outputs)}"
                     for i, o in enumerate(outputs)])


def _gradient_note(output, outputs):
    """`` = ∂[0]/∂W1`` for an output that is the gradient of output 0 (or of a cost
    that is not an output: ``∂cost/∂W1``)."""
    record = GRADIENT_OF.get(output)
    if record is None:
        return ""
    cost, wrt = record
    index = next((i for i, o in enumerate(outputs) if o is cost), None)
    of = f"[{index}]" if index is not None else "cost"
    return f" = ∂{of}/∂{wrt.name if wrt.is_input else 'node'}"


def _node_report(node, names, backward):
    """How a NaN/Inf report names a node: its op, pass, arguments and their shapes."""
    args = ", ".join(f"{names.value(a)}: {format_shape(a.shape)}" for a in node.args)
    return (f"{names.value(node)} = {node.op}({args}) in the "
            f"{'backward' if backward else 'forward'} pass")


def _check_updates(updates, inputs):
    """``{input: expr}`` as (input, expr) pairs, with the expr in the input's dtype."""
    if not updates:
        return []
    pairs = list(updates.items()) if isinstance(updates, dict) else list(updates)
    checked = []
    for x, new in pairs:
        if not any(x is i for i in inputs):
            raise ValueError(f"updates: {x!r} is not one of the function's inputs")
        if x.ndim == 0:
            raise ValueError(f"updates: input {x.name!r} is a scalar; only arrays can be "
                             "updated in place (make it shape (1,))")
        if not isinstance(new, Expr):
            raise TypeError(f"updates: the new value of {x.name!r} must be an expression")
        if new.shape != x.shape:
            raise ValueError(f"updates: the new value of {x.name!r} has shape "
                             f"{format_shape(new.shape)}, but the input has "
                             f"{format_shape(x.shape)}")
        checked.append((x, new if new.dtype == x.dtype else astype(new, x.dtype)))
    return checked


def _forward_roots(outputs):
    """What the forward pass computes, when some outputs are gradients (autodiff
    records which): the outputs that are not, or else the gradients' costs.  Empty
    when no output is a gradient (then nothing is labelled backward)."""
    grads = [GRADIENT_OF.get(o) for o in outputs]
    if not any(grads):
        return []
    values = [o for o, g in zip(outputs, grads) if g is None]
    return values or list({id(g[0]): g[0] for g in grads if g is not None}.values())


# ---------------------------------------------------------------------------------
# Pickling: a Function travels as its generated source, never as a graph
# ---------------------------------------------------------------------------------

_PICKLE_FORMAT = "graphc.Function/1"
_NUMBA_CACHE_FLAG = re.compile(r"@numba\.njit\(cache=(?:True|False)")

#: What an unpickled Function knows of an output: no graph travels, only its type.
OutputSpec = namedtuple("OutputSpec", "dtype shape")


def _pickle_payload(fn):
    """The plain data a pickled Function is made of, with a SHA-256 checksum."""
    payload = {
        "format": _PICKLE_FORMAT,
        "key": fn.key,
        "source": _unsealed(fn.module_source),
        "single": fn.single,
        "options": fn.options,
        "inputs": [[x.name, x.dtype.str, list(x.shape)] for x in fn.inputs],
        "outputs": [[o.dtype.str, list(o.shape)] for o in fn.outputs],
        # generated modules call graphc's shared runtime; exported ones inline it
        "runtime": runtime.runtime_key() if getattr(fn.module, "RUNTIME", ()) else None,
    }
    payload["sha256"] = _payload_digest(payload)
    return payload


def _payload_digest(payload):
    content = {k: v for k, v in payload.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=repr).encode()).hexdigest()


def _check_payload(payload):
    """Refuse, with a message saying why, a pickle that is not a graphc Function of
    this format, whose content does not match its checksum, or that needs a different
    shared runtime than this machine's graphc has."""
    found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
    if found != _PICKLE_FORMAT:
        raise pickle.UnpicklingError(f"not a graphc Function pickle of this graphc version "
                                     f"(format {found!r}, expected {_PICKLE_FORMAT!r})")
    try:
        intact = payload.get("sha256") == _payload_digest(payload)
    except (TypeError, ValueError):
        intact = False
    if not intact:
        raise pickle.UnpicklingError("corrupted graphc Function pickle: its SHA-256 checksum "
                                     "does not match its content")
    if payload["runtime"] is not None and payload["runtime"] != runtime.runtime_key():
        raise pickle.UnpicklingError(
            "this graphc Function was pickled by a different graphc version (its shared "
            "runtime differs): install the same graphc on every machine, or send an "
            "exported module instead (gc.export, then graphc.function.load_exported)")


def _rebuild_function(payload):
    """Unpickle a Function: import its module from this machine's graphc cache, or
    write the pickled source there and import it.  Code is never regenerated, and Numba
    compiles at most once per machine and graph (its disk cache beside the module
    serves every later process); within a process the module is imported once."""
    _check_payload(payload)
    key = payload["key"]
    if key not in _memo:
        _memo[key] = _import_source(key, payload["source"])
    module, source = _memo[key]
    inputs = [tensor(name, tuple(shape), dtype) for name, dtype, shape in payload["inputs"]]
    outputs = [OutputSpec(np.dtype(dtype), tuple(shape)) for dtype, shape in payload["outputs"]]
    return Function(inputs, outputs, payload["single"], module, source, key, payload["options"])


def _import_source(key, source):
    """(module, source) for `key`: the cache entry if there is a valid one, else
    `source` stored there (or built in memory where the cache cannot be written)."""
    module = cache.load(key)
    if module is not None:
        source = Path(module.__file__).read_text(encoding="utf-8")
    else:
        module, source = cache.store_and_import(
            key, lambda cache: _NUMBA_CACHE_FLAG.sub(f"@numba.njit(cache={cache}", source))
    runtime.link(module)
    return module, source


def _unsealed(source):
    """`source` without a cache entry's checksum line: the cache seals what it stores
    (a pickle carries its own checksum)."""
    body, _, last = source.rstrip("\n").rpartition("\n")
    return body + "\n" if last.startswith(cache._TRAILER) else source


def load_exported(path):
    """A module written by ``gc.export``, as a Function, so that it pickles like one:
    its pickles carry the standalone source (no shared runtime to match), and
    unpickling stores it in the receiving machine's graphc cache.  Its ``outputs``
    are OutputSpecs (dtype, shape): an exported module holds no graph."""
    path = Path(path)
    source = path.read_text(encoding="utf-8")
    found = re.search(r"^GRAPHC_KEY = '([0-9a-f]{64})'$", source, re.MULTILINE)
    if found is None:
        raise ValueError(f"{path} is not a module exported by graphc (it has no GRAPHC_KEY)")
    module = cache._import(path, found.group(1))  # checks GRAPHC_KEY
    inputs = [tensor(name, shape, dtype) for name, dtype, shape in module.INPUTS]
    outputs = [OutputSpec(np.dtype(dtype), shape) for dtype, shape in module.OUTPUTS]
    single = "-> one value" in (module.__doc__ or "").split("\n", 3)[2]
    return Function(inputs, outputs, single, module, source, module.GRAPHC_KEY, None)


def export(fn, path):
    """Write `fn`'s module as a standalone file: it imports only numpy and numba, checks
    its arguments like the Function, and describes inputs and outputs in its docstring
    and in ``INPUTS``/``OUTPUTS``.  Its ``fn`` gives the same results."""
    if not isinstance(fn, Function):
        raise TypeError(f"export: expected a compiled graphc.Function, got {type(fn).__name__}")
    path = Path(path)
    if path.suffix != ".py":
        raise ValueError(f"export: the path must end in .py, got {str(path)!r}")
    cache.write_atomic(path, runtime.standalone(fn.module_source))
    return path


__all__ = ["Function", "OutputSpec", "compile", "export", "inputs_of", "load_exported"]
