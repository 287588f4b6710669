"""``gc.random``: counter-based random numbers keyed by an integer seed.

The generator is Philox4x32-10 (Salmon, Moraes, Dror and Shaw, "Parallel random
numbers: as easy as 1, 2, 3", SC 2011; the generator of cuRAND, PyTorch's CUDA
backend and TensorFlow): a keyed bijection of a 128-bit counter, ten rounds of two
32x32->64-bit multiplications.  It passes TestU01's BigCrush for any key, and distinct
keys give independent streams; graphc's implementation reproduces Random123's
known-answer vectors (tests/test_random.py).

Element ``i`` of a result depends on nothing but (seed, key, distribution, i):

* the Philox key is the seed's 64 bits; the counter is (block, block >> 32, key, tag),
  where `key` is the op's 32-bit salt parameter and `tag` names the distribution;
* a block gives four 32-bit words: four float32 uniforms (24 bits each, ``k * 2**-24``),
  or two float64 uniforms (53 bits, ``k * 2**-53``), or two normals (Box-Muller on two
  53-bit uniforms, the first in (0, 1]);
* so one thread or many, evaluate, the tape or compiled code give the same bits: the
  NumPy implementation calls the very function compiled code calls (a Numba helper of
  the shared runtime), and nothing depends on how the work is split.

As in JAX, a random function is a pure function of its arguments: the same seed, shape,
`key` and dtype give the same numbers (and, graphs being hash-consed, the same node).
For independent draws in one graph pass another `key` (or another seed);
``gc.nn.dropout`` derives its key from the structure of the graph it masks, so two
dropout layers of one model differ.  The seed is a graph input (an int64 scalar, see
``seed()``), so a new seed per training step needs no recompile.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from . import api, graph
from .graph import Expr
from .lowering import Code
from .ops import Op, register
from .shapes import ShapeError, check_shape_arg, format_shape

#: Counter word 3: one stream per distribution and precision.
_TAGS = {("uniform", 4): 1, ("uniform", 8): 2, ("normal", 4): 3, ("normal", 8): 3}

_PHILOX = '''
def _philox_chunk(a0, a1, a2, a3, start, m, seed, key, tag):
    """Philox4x32-10 of the counters (start + j, 0, key, tag), j < m, into the words
    a0..a3 (uint64 arrays holding 32-bit values).  Rounds outside, blocks inside: the
    inner loops vectorise."""
    mask = np.uint64(0xFFFFFFFF)
    s = np.uint64(32)
    m0 = np.uint64(0xD2511F53)
    m1 = np.uint64(0xCD9E8D57)
    w0 = np.uint64(0x9E3779B9)
    w1 = np.uint64(0xBB67AE85)
    k = np.uint64(seed)
    c2 = np.uint64(key) & mask
    c3 = np.uint64(tag) & mask
    for j in range(m):
        b = np.uint64(start + j)
        a0[j] = b & mask
        a1[j] = b >> s
        a2[j] = c2
        a3[j] = c3
    k0 = k & mask
    k1 = k >> s
    for _ in range(10):
        for j in range(m):
            p0 = m0 * a0[j]
            p1 = m1 * a2[j]
            y0 = (p1 >> s) ^ a1[j] ^ k0
            y2 = (p0 >> s) ^ a3[j] ^ k1
            a1[j] = p1 & mask
            a3[j] = p0 & mask
            a0[j] = y0
            a2[j] = y2
        k0 = (k0 + w0) & mask
        k1 = (k1 + w1) & mask
'''

_UNIFORM = '''
def _random_uniform_fill(out, seed, key, tag, low, high, per_block):
    """out (1-D) <- low + (high - low) * u, u uniform on [0, 1): 24-bit uniforms, four
    per block (float32), or 53-bit ones, two per block (float64).  (Four separate word
    arrays: LLVM vectorises the rounds only when it can see they do not alias.)"""
    C = 128
    a0 = np.empty(C, dtype=np.uint64)
    a1 = np.empty(C, dtype=np.uint64)
    a2 = np.empty(C, dtype=np.uint64)
    a3 = np.empty(C, dtype=np.uint64)
    s = np.uint64(32)
    n = out.size
    bits = 24 if per_block == 4 else 53
    scale = (high - low) * 2.0 ** -bits
    shift = np.uint64(32 - bits) if per_block == 4 else np.uint64(64 - bits)
    blocks = (n + per_block - 1) // per_block
    for start in range(0, blocks, C):
        m = min(C, blocks - start)
        _philox_chunk(a0, a1, a2, a3, start, m, seed, key, tag)
        base = start * per_block
        if per_block == 4:
            full = min(m, (n - base) // 4)
            for j in range(full):
                i = base + 4 * j
                out[i] = low + scale * float(np.int64(a0[j] >> shift))
                out[i + 1] = low + scale * float(np.int64(a1[j] >> shift))
                out[i + 2] = low + scale * float(np.int64(a2[j] >> shift))
                out[i + 3] = low + scale * float(np.int64(a3[j] >> shift))
            for i in range(base + 4 * full, min(n, base + 4 * m)):
                w = (i - base) % 4
                j = (i - base) // 4
                x = a0[j] if w == 0 else (a1[j] if w == 1 else (a2[j] if w == 2 else a3[j]))
                out[i] = low + scale * float(np.int64(x >> shift))
        else:
            full = min(m, (n - base) // 2)
            for j in range(full):
                i = base + 2 * j
                out[i] = low + scale * float(np.int64(((a0[j] << s) | a1[j]) >> shift))
                out[i + 1] = low + scale * float(np.int64(((a2[j] << s) | a3[j]) >> shift))
            if full < m:
                out[n - 1] = low + scale * float(np.int64(((a0[full] << s) | a1[full]) >> shift))
'''

_NORMAL = '''
def _random_normal_fill(out, seed, key, tag):
    """out (1-D) <- standard normals, two per block by Box-Muller:
    r = sqrt(-2 log u1), u1 in (0, 1]; out = r cos(2 pi u2), r sin(2 pi u2)."""
    C = 128
    a0 = np.empty(C, dtype=np.uint64)
    a1 = np.empty(C, dtype=np.uint64)
    a2 = np.empty(C, dtype=np.uint64)
    a3 = np.empty(C, dtype=np.uint64)
    s = np.uint64(32)
    shift = np.uint64(11)
    ulp = 2.0 ** -53
    n = out.size
    blocks = (n + 1) // 2
    for start in range(0, blocks, C):
        m = min(C, blocks - start)
        _philox_chunk(a0, a1, a2, a3, start, m, seed, key, tag)
        for j in range(m):
            u1 = (float(np.int64(((a0[j] << s) | a1[j]) >> shift)) + 1.0) * ulp
            u2 = float(np.int64(((a2[j] << s) | a3[j]) >> shift)) * ulp
            r = math.sqrt(-2.0 * math.log(u1))
            t = 2.0 * math.pi * u2
            i = 2 * (start + j)
            out[i] = r * math.cos(t)
            if i + 1 < n:
                out[i + 1] = r * math.sin(t)
'''

HELPERS = (_PHILOX, _UNIFORM, _NORMAL)


def _runtime():
    """The shared runtime's compiled helpers (the same functions compiled code calls)."""
    from .codegen.runtime import shared
    return shared()


def _out_shape(args, shape):
    return tuple(np.shape(args[0])) if args else tuple(shape)


def _seed_value(seed):
    return np.int64(np.asarray(seed).astype(np.int64))


def _uniform_impl(seed, *like, shape, key, low, high, dtype):
    dt = np.dtype(dtype)
    out = np.empty(_out_shape(like, shape), dtype=dt)
    _runtime()._random_uniform_fill(out.reshape(-1), _seed_value(seed), np.int64(key),
                                    np.int64(_TAGS["uniform", dt.itemsize]), float(low),
                                    float(high), np.int64(4 if dt.itemsize == 4 else 2))
    return out


def _normal_impl(seed, *like, shape, key, dtype):
    dt = np.dtype(dtype)
    out = np.empty(_out_shape(like, shape), dtype=dt)
    _runtime()._random_normal_fill(out.reshape(-1), _seed_value(seed), np.int64(key),
                                   np.int64(_TAGS["normal", dt.itemsize]))
    return out


def _random_shape(name):
    def rule(shapes, meet, shape, **_):
        if len(shapes) > 2:
            raise TypeError(f"{name} takes a seed and at most one array to follow")
        if tuple(shapes[0]) != ():
            raise ShapeError(f"{name}: the seed must be a scalar, got shape "
                             f"{format_shape(shapes[0])}")
        return tuple(shapes[1]) if len(shapes) == 2 else tuple(shape)
    return rule


def _lines(call):
    """Code lowering: allocate the result and fill it through its flat view."""
    def lines(t, args, node, shape):
        buf = f"_{t}_buf"
        scalar = node.shape == ()
        out = [f"{buf} = np.empty({'(1,)' if scalar else shape}, dtype=np.{node.dtype.name})",
               f"{call(node, args[0])}".replace("OUT", f"{buf}.reshape(-1)")]
        out.append(f"{t} = {buf}[0]" if scalar else f"{t} = {buf}")
        return out
    return lines


def _uniform_call(node, seed):
    p = node.kwargs
    size = node.dtype.itemsize
    return (f"_random_uniform_fill(OUT, {seed}, {p['key']}, {_TAGS['uniform', size]}, "
            f"{float(p['low'])!r}, {float(p['high'])!r}, {4 if size == 4 else 2})")


def _normal_call(node, seed):
    p = node.kwargs
    return f"_random_normal_fill(OUT, {seed}, {p['key']}, {_TAGS['normal', node.dtype.itemsize]})"


register(Op(name="random_uniform", kind="structure", arity=-1, impl=_uniform_impl,
            shape=_random_shape("random_uniform"),
            dtype=lambda dtypes, dtype, **_: np.dtype(dtype),
            params=("shape", "key", "low", "high", "dtype"), shape_only=(1,), public=False,
            lowering=Code(_lines(_uniform_call), helpers=HELPERS),
            doc="uniform numbers on [low, high) keyed by (seed, key): gc.random.uniform"))

register(Op(name="random_normal", kind="structure", arity=-1, impl=_normal_impl,
            shape=_random_shape("random_normal"),
            dtype=lambda dtypes, dtype, **_: np.dtype(dtype),
            params=("shape", "key", "dtype"), shape_only=(1,), public=False,
            lowering=Code(_lines(_normal_call), helpers=HELPERS),
            doc="standard normal numbers keyed by (seed, key): gc.random.normal"))


# ---------------------------------------------------------------------------------
# The functions users call
# ---------------------------------------------------------------------------------

def seed(name="seed"):
    """An int64 scalar input to key random numbers with (``train`` feeds a fresh value
    to every training step)."""
    return graph.scalar(name, dtype="int64")


def _as_seed(s, what):
    """The seed as an int64 scalar: an integer expression (int32 converted), a Python
    or NumPy integer (a constant), or a tape tensor holding an integer."""
    if isinstance(s, Expr):
        if s.dtype.kind not in "iu":
            raise TypeError(f"{what}: the seed must be an integer expression, got dtype "
                            f"{s.dtype}; use gc.scalar(name, dtype='int64')")
        return s if s.dtype == np.int64 else api.astype(s, "int64")
    value = getattr(s, "data", s)            # a tape tensor holds its value as data
    arr = np.asarray(value)
    if arr.shape != () or arr.dtype.kind not in "iuf" or isinstance(value, bool):
        raise TypeError(f"{what}: the seed must be an integer, got {s!r}")
    if arr.dtype.kind == "f" and not float(arr).is_integer():
        raise TypeError(f"{what}: the seed must be an integer, got {s!r}")
    v = int(arr)
    if not -2 ** 63 <= v < 2 ** 64:
        raise ValueError(f"{what}: the seed {v} does not fit in 64 bits")
    return graph.const(np.int64(v - 2 ** 64 if v >= 2 ** 63 else v), "int64")


def _key(key, what):
    if not isinstance(key, numbers.Integral) or isinstance(key, bool) or not 0 <= key < 2 ** 32:
        raise ValueError(f"{what}: key must be an integer in [0, 2**32), got {key!r}")
    return int(key)


def _float_dtype(dtype, what):
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"{what}: dtype must be float32 or float64, got {dt}")
    return dt.name


def _follows(shape):
    """Whether `shape` is an array to follow (an expression or a tape tensor)."""
    return isinstance(shape, Expr) or (api._tape is not None and type(shape) is api._tape.Tensor)


def _shape_args(shape, what):
    """(extra op arguments, static shape parameter)."""
    if _follows(shape):
        return (shape,), None
    shape = check_shape_arg(what, shape)
    if any(d is None or d < 0 for d in shape):
        raise ShapeError(f"{what}: the shape must be static and non-negative, got {shape}; "
                         "pass an expression instead of a shape to follow its dynamic "
                         "dimensions (e.g. gc.random.uniform(seed, x))")
    return (), shape


def uniform(seed, shape=(), low=0.0, high=1.0, dtype="float64", key=0):
    """Uniform numbers on [low, high) (float32: 24 random bits, float64: 53), keyed by
    the integer `seed` and `key`.  (``low + (high - low) * u`` is computed in float64; a
    float32 result is that rounded, which may round up to `high` unless (low, high) is
    (0, 1).)  `shape` is a tuple of ints, or an expression (or tape
    tensor) whose shape, dynamic dimensions included, the result takes."""
    what = "gc.random.uniform"
    low, high = float(low), float(high)
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"{what}: low and high must be finite, got {low}, {high}")
    extra, static = _shape_args(shape, what)
    return api._apply("random_uniform", _as_seed(seed, what), *extra, shape=static,
                      key=_key(key, what), low=low, high=high, dtype=_float_dtype(dtype, what))


def normal(seed, shape=(), dtype="float64", key=0):
    """Standard normal numbers (Box-Muller on 53-bit uniforms; float32 results are the
    float64 values rounded), keyed by `seed` and `key`; `shape` as for ``uniform``."""
    what = "gc.random.normal"
    extra, static = _shape_args(shape, what)
    return api._apply("random_normal", _as_seed(seed, what), *extra, shape=static,
                      key=_key(key, what), dtype=_float_dtype(dtype, what))


def bernoulli(seed, p=0.5, shape=None, key=0):
    """A bool array, True with probability `p` (a number, or an expression broadcast to
    `shape`, whose shape it is by default, as in JAX): ``uniform(seed, shape,
    dtype="float32") < p``, so p is resolved to 2**-24."""
    if isinstance(p, numbers.Real) and not isinstance(p, bool) and not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"gc.random.bernoulli: p must be in [0, 1], got {p}")
    if shape is None:
        shape = p if _follows(p) else np.shape(p)
    u = uniform(seed, shape, dtype="float32", key=key)
    return api.less(u, p)


def uniform_like(seed, x, low=0.0, high=1.0, dtype=None, key=0):
    """``uniform`` of x's shape (dynamic dimensions included) and, by default, dtype."""
    return uniform(seed, x, low, high, _like_dtype(x, dtype), key)


def normal_like(seed, x, dtype=None, key=0):
    return normal(seed, x, _like_dtype(x, dtype), key)


def bernoulli_like(seed, p, x, key=0):
    return bernoulli(seed, p, x, key)


def structure_key(x):
    """A 32-bit key from the structure of graph `x` (ops, parameters, input names,
    constant values; not node identities), so it is the same in every process: what
    ``gc.nn.dropout`` keys its mask with by default.  A tape tensor has no graph: its
    key comes from its shape and dtype."""
    import hashlib
    h = hashlib.sha256()
    if not isinstance(x, Expr):
        h.update(f"tape {np.shape(getattr(x, 'data', x))} {np.asarray(getattr(x, 'data', x)).dtype}"
                 .encode())
        return int.from_bytes(h.digest()[:4], "little")
    index = {}
    for node in graph.toposort([x]):
        index[node] = len(index)
        if node.is_input:
            h.update(f"in {node.name} {node.dtype.str} {node.shape}\n".encode())
        elif node.is_const:
            h.update(f"const {node.dtype.str} {node.shape} ".encode())
            h.update(hashlib.sha256(node.value.tobytes()).digest())
        else:
            h.update(f"{node.op} {[index[a] for a in node.args]} {node.params}\n".encode())
    return int.from_bytes(h.digest()[:4], "little")


def _like_dtype(x, dtype):
    if dtype is not None:
        return dtype
    dt = np.dtype(getattr(x, "dtype", np.float64))
    return dt if dt.kind == "f" else np.dtype(np.float64)


__all__ = ["bernoulli", "bernoulli_like", "normal", "normal_like", "seed", "structure_key",
           "uniform", "uniform_like"]
