"""The disk cache of generated modules.

A module is named by a hash of the graph (its canonical text), the compile options and
the graphc/Numba/NumPy versions.  It is written atomically and imported from the cache
directory, so Numba's own ``cache=True`` keeps the machine code next to it: a second
process that compiles the same graph skips both code generation and LLVM.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import sys
import warnings
from pathlib import Path

import numpy as np

from ..atomic import atomic_write
from ..graph import toposort
from ..ops import OPS
from ..version import __version__

_warned_unwritable = False


def cache_dir():
    """``$GRAPHC_CACHE_DIR``, else the user's cache directory."""
    env = os.environ.get("GRAPHC_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "graphc"


@functools.cache
def graphc_fingerprint():
    """A hash of graphc's own source: a changed code generator never reuses old entries."""
    h = hashlib.sha256()
    root = Path(__file__).resolve().parent.parent
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def graph_key(inputs, outputs, options):
    """A hash of everything the generated module depends on."""
    import numba

    h = hashlib.sha256()
    h.update(f"graphc {__version__} {graphc_fingerprint()} numba {numba.__version__} numpy {np.__version__} "
             f"python {sys.version_info[:2]} options {sorted(options.items())}\n".encode())
    index = {}
    for x in inputs:
        index[x] = len(index)
        h.update(f"in {x.name} {x.dtype.str} {x.shape}\n".encode())
    for node in toposort(outputs):
        if node in index:
            continue
        index[node] = len(index)
        if node.is_input:
            raise ValueError(f"the outputs depend on input {node.name!r}, which is not among "
                             f"the inputs given: {[x.name for x in inputs]}")
        if node.is_const:
            h.update(f"const {node.dtype.str} {node.shape} ".encode())
            h.update(hashlib.sha256(node.value.tobytes()).digest())
            h.update(b"\n")
            continue
        h.update(f"{node.op} {[index[a] for a in node.args]} {node.params} "
                 f"{OPS[node.op].fingerprint}\n".encode())
    h.update(f"out {[index[o] for o in outputs]}".encode())
    return h.hexdigest()


def _module_path(key, stem="graphc"):
    return cache_dir() / f"{stem}_{key[:32]}.py"


def _import(path, key):
    name = f"_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module        # Numba's cache finds the module's globals by name
    try:
        spec.loader.exec_module(module)
        if getattr(module, "GRAPHC_KEY", None) != key:
            raise ImportError(f"{path} is not the cache entry for this graph")
    except BaseException:
        del sys.modules[name]
        raise
    return module


_TRAILER = "# graphc-sha256: "


def seal(source):
    """`source` with a last line holding its checksum, so a truncated or corrupted
    cache entry is recognised before it is imported."""
    digest = hashlib.sha256(source.encode()).hexdigest()
    return f"{source}{_TRAILER}{digest}\n"


def is_sealed(text):
    body, sep, digest = text.rstrip("\n").rpartition(_TRAILER)
    return bool(sep) and hashlib.sha256(body.encode()).hexdigest() == digest


def load(key, stem="graphc"):
    """The cached module for `key`, or ``None`` (missing, unreadable or corrupt)."""
    path = _module_path(key, stem)
    try:
        if not is_sealed(path.read_text(encoding="utf-8")):
            return None
        return _import(path, key)
    except Exception:  # noqa: BLE001  missing, corrupt or foreign: rebuilt, never fatal
        return None


def write_atomic(path, text):
    """Write `text` to `path` so that no reader ever sees a partial file."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def store_and_import(key, source_for, stem="graphc"):
    """Write the module made by ``source_for(cache=True)`` to the cache and import it.

    If the cache directory cannot be written, warn once and build the module in memory
    from ``source_for(cache=False)`` (Numba cannot cache functions that are not in a
    file)."""
    global _warned_unwritable
    path = _module_path(key, stem)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        source = seal(source_for(cache=True))
        write_atomic(path, source)
        return _import(path, key), source
    except OSError as exc:
        if not _warned_unwritable:
            warnings.warn(f"graphc: cannot write the compile cache at {path.parent} ({exc}); "
                          "compiling in memory (set GRAPHC_CACHE_DIR to a writable directory)",
                          RuntimeWarning, stacklevel=3)
            _warned_unwritable = True
        source = source_for(cache=False)
        return in_memory_module(source, key), source


def in_memory_module(source, key):
    import types
    module = types.ModuleType(f"_graphc_mem_{key[:32]}")
    exec(compile(source, f"<graphc {key[:12]}>", "exec"), module.__dict__)  # noqa: S102  our generated code
    return module
