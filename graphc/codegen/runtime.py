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

from ..ops import OPS
from .interp import interpreter_source

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

_PLACEHOLDER = re.compile(r"^(?P<names>_\w+(?: = _\w+)*) = None  # linked from graphc's runtime.*$",
                          re.MULTILINE)


def _decorator(cache):
    return f"@numba.njit(cache={cache}, nogil=True, error_model='numpy')"


def definitions(cache=True):
    """name -> source of every runtime function."""
    deco = _decorator(cache)
    defs = {f"_{name}": f"{deco}{op.helper.rstrip()}\n"
            for name, op in sorted(OPS.items()) if op.helper and op.code}
    defs = {re.search(r"def (\w+)\(", src).group(1): src for src in defs.values()}
    defs["_dot"] = f"{deco}{_DOT.rstrip()}\n"
    defs["_assign"] = f"{deco}{_ASSIGN.rstrip()}\n"
    defs["_run"] = interpreter_source(deco)
    return defs


def placeholder(names):
    """The line a generated module holds instead of the runtime functions it calls."""
    names = sorted(set(names))
    if not names:
        return ""
    return (f"RUNTIME = {tuple(names)!r}\n"
            f"{' = '.join(names)} = None  # linked from graphc's runtime (export inlines them)\n")


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
    """The runtime module, compiled once per graphc version and cached on disk."""
    from . import cache as disk
    key = runtime_key()
    module = disk.load(key, "graphc_runtime")
    if module is None:
        module, _ = disk.store_and_import(key, lambda cache: _runtime_module(key, cache),
                                          "graphc_runtime")
    return module


def link(module):
    """Point a generated module's runtime names at the shared runtime."""
    for name in getattr(module, "RUNTIME", ()):
        setattr(module, name, getattr(shared(), name))


def standalone(source):
    """A generated module's source with its runtime functions defined in it."""
    match = _PLACEHOLDER.search(source)
    if match is None:
        return source
    names = match.group("names").split(" = ")
    defs = definitions(cache=True)
    if "_run" in names:                 # the interpreter calls every helper
        names = [n for n in defs if n not in ("_dot", "_assign")]
    body = "\n\n".join(defs[n] for n in sorted(set(names)))
    return source[:match.start()] + body + source[match.end():]
