"""Op-table cases of gc.random (merged into tests/test_op_table.py), and an independent
NumPy implementation of the generator they are checked against: Philox4x32-10 over
arrays of counters (integer arithmetic only, so the uniforms are exact; normals follow
through NumPy's log/cos/sin, within an ulp or so of libm's)."""

import numpy as np

import graphc as gc

_MASK = np.uint64(0xFFFFFFFF)
_TAG = {("uniform", 4): 1, ("uniform", 8): 2, ("normal", 4): 3, ("normal", 8): 3}


def philox4x32_10(counters, key):
    """Random123's Philox4x32-10: counters (n, 4) and a key (2,) of 32-bit values ->
    (n, 4) words, as uint64."""
    c = [np.asarray(counters, dtype=np.uint64)[:, i].copy() for i in range(4)]
    k0, k1 = np.uint64(key[0]), np.uint64(key[1])
    s = np.uint64(32)
    for _ in range(10):
        p0 = np.uint64(0xD2511F53) * c[0]
        p1 = np.uint64(0xCD9E8D57) * c[2]
        c = [(p1 >> s) ^ c[1] ^ k0, p1 & _MASK, (p0 >> s) ^ c[3] ^ k1, p0 & _MASK]
        k0 = (k0 + np.uint64(0x9E3779B9)) & _MASK
        k1 = (k1 + np.uint64(0xBB67AE85)) & _MASK
    return np.stack(c, axis=1)


def _words(seed, key, tag, blocks):
    seed = int(seed) % 2 ** 64
    b = np.arange(blocks, dtype=np.uint64)
    counters = np.stack([b & _MASK, b >> np.uint64(32), np.full(blocks, key, np.uint64),
                         np.full(blocks, tag, np.uint64)], axis=1)
    return philox4x32_10(counters, (seed & 0xFFFFFFFF, seed >> 32))


def reference_uniform(seed, shape, low=0.0, high=1.0, dtype="float64", key=0):
    dt = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64))
    if dt.itemsize == 4:            # four 24-bit uniforms per block
        w = _words(seed, key, _TAG["uniform", 4], (n + 3) // 4).reshape(-1)[:n]
        u = (w >> np.uint64(8)).astype(np.float64) * 2.0 ** -24
    else:                           # two 53-bit uniforms per block
        w = _words(seed, key, _TAG["uniform", 8], (n + 1) // 2)
        w64 = ((w[:, 0::2] << np.uint64(32)) | w[:, 1::2]).reshape(-1)[:n]
        u = (w64 >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
    return (low + (high - low) * u).astype(dt).reshape(shape)


def reference_normal(seed, shape, dtype="float64", key=0):
    n = int(np.prod(shape, dtype=np.int64))
    w = _words(seed, key, _TAG["normal", 8], (n + 1) // 2)
    w64 = (w[:, 0::2] << np.uint64(32)) | w[:, 1::2]
    u1 = ((w64[:, 0] >> np.uint64(11)).astype(np.float64) + 1.0) * 2.0 ** -53
    u2 = (w64[:, 1] >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
    r, t = np.sqrt(-2.0 * np.log(u1)), 2.0 * np.pi * u2
    z = np.stack([r * np.cos(t), r * np.sin(t)], axis=1).reshape(-1)[:n]
    return z.astype(dtype).reshape(shape)


def _rng_values():
    rng = np.random.default_rng(314)
    return lambda *shape: rng.uniform(-2, 2, size=shape)


U = _rng_values()


def _dropout_reference(a, rate, seed, key):
    keep = reference_uniform(seed, a.shape, dtype="float32", key=key) >= np.float32(rate)
    return np.where(keep, a * (1.0 / (1.0 - rate)), 0.0)


# name -> (build, input values, NumPy reference); the seeds are constants (the
# checker's inputs are floats, and a seed is never differentiated)
CASES = {
    "random_uniform (static shape, low/high, odd size)": (
        lambda a: a * gc.random.uniform(7, (5,), low=-1.0, high=2.0) + a,
        [U(5)], lambda a: a * reference_uniform(7, (5,), -1.0, 2.0) + a),
    "random_uniform float32, 4 per block, key": (
        lambda a: a * gc.astype(gc.random.uniform(-3, (2, 3), dtype="float32", key=5), "float64"),
        [U(2, 3)], lambda a: a * reference_uniform(-3, (2, 3), dtype="float32", key=5)),
    "random_uniform_like (follows an argument)": (
        lambda a: a * gc.random.uniform_like(11, a, key=2),
        [U(3, 2)], lambda a: a * reference_uniform(11, (3, 2), key=2)),
    "random_normal (and of shape ())": (
        lambda a, b: a * gc.random.normal(3, (3, 1)) + b * gc.random.normal(2**40 + 1),
        [U(3, 4), U()],
        lambda a, b: a * reference_normal(3, (3, 1)) + b * reference_normal(2**40 + 1, ())),
    "random_normal_like float32": (
        lambda a: a + a * gc.astype(gc.random.normal_like(4, a, dtype="float32", key=9), "float64"),
        [U(2, 3)], lambda a: a + a * reference_normal(4, (2, 3), "float32", key=9)),
    "bernoulli, dropout (gradient mask / (1 - rate))": (
        lambda a: gc.nn.dropout(a, 0.4, 9, key=2) + gc.where(gc.random.bernoulli(5, 0.3, (4,)),
                                                              a, 0.5 * a),
        [U(3, 4)],
        lambda a: _dropout_reference(a, 0.4, 9, 2)
        + np.where(reference_uniform(5, (4,), dtype="float32") < np.float32(0.3), a, 0.5 * a)),
}
