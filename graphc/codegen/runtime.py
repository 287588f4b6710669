"""The shared runtime: scalar helpers from the op table, the BLAS matrix product, and
the register-machine interpreter, in one generated module compiled once per graphc
version and kept in Numba's disk cache.

Generated graph modules do not define these functions; they name them in ``RUNTIME``
and graphc links them in after import.  Compiling ``np.dot`` alone costs Numba about
1.5 s (three layout variants), so sharing it is what keeps a new graph's cold compile
short.  ``gc.export`` inlines the definitions instead, so an exported module stands
alone."""

from __future__ import annotations

import functools
import hashlib
import re

from ..lowering import Call, Code, PerElement
from ..ops import OPS
from . import vecmath
from .interp import interpreter_source
from .linking import RUNTIME_PLACEHOLDER

_DOT = '''
def _dot(a, b):
    """np.dot (BLAS for contiguous and transposed operands), compiled once."""
    return np.dot(a, b)
'''

_ASSIGN = '''
def _assign(dst, src):
    """dst[...] = src for same-shape arrays, as a flat loop (Numba compiles the general
    broadcasting assignment slowly: ~0.1 s per array type)."""
    d = dst.reshape(-1)
    s = np.ascontiguousarray(src).reshape(-1)
    for i in range(d.size):
        d[i] = s[i]
'''


def _decorator(cache):
    return f"@numba.njit(cache={cache}, nogil=True, error_model='numpy')"


def definitions(cache=True):
    """name -> source of every runtime function."""
    deco = _decorator(cache)
    defs = {f"_{name}": f"{deco}{op.lowering.helper.rstrip()}\n"
            for name, op in sorted(OPS.items())
            if isinstance(op.lowering, PerElement) and op.lowering.helper and op.lowering.code}
    defs.update({f"scalar {name}": f"{deco}{op.lowering.scalar_helper.rstrip()}\n"
                 for name, op in sorted(OPS.items())
                 if isinstance(op.lowering, PerElement) and op.lowering.scalar_helper})
    defs.update({f"code {name} {i}": f"{deco}\n{src.strip()}\n" for name, op in sorted(OPS.items())
                 if isinstance(op.lowering, Code) for i, src in enumerate(op.lowering.helpers)})
    defs = {re.search(r"def (\w+)\(", src).group(1): src for src in defs.values()}
    defs.update(vecmath.definitions(deco))
    defs["_dot"] = f"{deco}{_DOT.rstrip()}\n"
    defs["_assign"] = f"{deco}{_ASSIGN.rstrip()}\n"
    defs["_run"] = interpreter_source(deco)
    return defs


def runtime_key():
    from .cache import graphc_fingerprint
    return hashlib.sha256(f"runtime {graphc_fingerprint()}".encode()).hexdigest()


def _runtime_module(key, cache):
    return "\n".join([
        '"""graphc\'s shared runtime (generated from the op table)."""',
        "import math", "", "import numba", "import numpy as np", "",
        f"GRAPHC_KEY = {key!r}", "", ""] + [src + "\n" for src in definitions(cache).values()])


@functools.cache
def shared():
    """The runtime module, compiled once per graphc version and cached on disk (loading
    it also limits the BLAS pool that its ``np.dot`` uses: graphc/blas.py)."""
    from .. import blas
    from . import cache as disk
    blas.coordinate()
    key = runtime_key()
    module = disk.load(key, "graphc_runtime")
    if module is None:
        module, _ = disk.store_and_import(key, lambda cache: _runtime_module(key, cache),
                                          "graphc_runtime")
    return module


def link(module):
    """Point a generated module's runtime names at the shared runtime, and its op
    functions at the op table's implementations (a custom op's ``njit`` function for a
    Call, its checked NumPy ``impl`` for objmode)."""
    for name in getattr(module, "RUNTIME", ()):
        setattr(module, name, getattr(shared(), name))
    for name, op_name in getattr(module, "OP_FUNCTIONS", {}).items():
        op = OPS.get(op_name)
        if op is None:
            raise RuntimeError(f"the compiled graph calls op {op_name!r}, which is not in the "
                               "op table of this process (define the custom op before "
                               "loading a Function that uses it)")
        setattr(module, name, op.njit if isinstance(op.lowering, Call) else op.impl)


#: What an exported module that multiplies matrices needs besides numpy and numba:
#: Numba runs ``np.dot`` through SciPy's BLAS bindings (``scipy.linalg.cython_blas``).
_BLAS_GUARD = """
try:                                    # Numba's np.dot calls BLAS through SciPy
    import scipy.linalg.cython_blas  # noqa: F401
except ImportError as exc:
    raise ImportError(f"{__name__} computes matrix products, which Numba runs through "
                      "SciPy's BLAS: install scipy (pip install scipy)") from exc
"""


def standalone(source):
    """A generated module's source with its runtime functions defined in it.  A module
    that computes matrix products also needs SciPy: its docstring says so, and
    importing it without SciPy raises an ImportError that says how to install it
    (rather than a Numba traceback at the first call)."""
    custom = re.search(r"^OP_FUNCTIONS = (.*)$", source, re.MULTILINE)
    if custom:
        raise TypeError(f"export: the graph calls custom ops {custom.group(1)} whose "
                        "implementations live in your Python code; an exported module "
                        "stands alone, so it cannot hold them")
    match = RUNTIME_PLACEHOLDER.search(source)
    if match is None:
        return _requires(source, blas=False)
    names = match.group("names").split(" = ")
    defs = definitions(cache=True)
    if "_run" in names:                 # the interpreter calls every helper
        names = [n for n in defs if n not in ("_dot", "_assign")]
    body = "\n\n".join(defs[n] for n in sorted(_with_callees(names, defs)))
    source = source[:match.start()] + body + source[match.end():]
    return _requires(source, blas="_dot" in names)


def _with_callees(names, defs):
    """`names` and every runtime function their definitions use (vecmath's functions
    call each other and share intrinsics)."""
    found, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo += [n for n in re.findall(r"\b_\w+\b", defs[name]) if n in defs]
    return found


def _requires(source, blas):
    """The module's docstring states its dependencies; with `blas`, the import guard
    follows ``import numpy as np``."""
    needs = "numpy, numba and scipy (for BLAS)" if blas else "numpy and numba"
    source = source.replace('"""Generated by graphc: do not edit.\n',
                            f'"""Generated by graphc: do not edit.  Requires {needs}.\n', 1)
    if blas:
        source = source.replace("import numpy as np\n", "import numpy as np\n" + _BLAS_GUARD, 1)
    return source
