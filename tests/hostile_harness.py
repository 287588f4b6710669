"""Generates bad calls to compiled Functions and to an exported module and classifies
each outcome.  Run in a subprocess by tests/test_hostile.py, so that a crash of the
interpreter shows up as a failed run instead of killing the test session.

Prints one JSON line: counts of calls that worked (and matched NumPy), raised the
documented error naming the input, or misbehaved (listed)."""

import itertools
import json
import sys
import tempfile
import traceback

import numpy as np

import graphc as gc

X, w, t = gc.tensor("X", (None, 3)), gc.vector("w", 3), gc.vector("t", None)
cost = gc.sum(gc.square(X @ w - t))
OUTPUTS = [cost, gc.grad(cost, w)]
FN = gc.compile([X, w, t], OUTPUTS)
M, s = gc.tensor("M", (2, None), "float32"), gc.scalar("s", "float32")
FN32 = gc.compile([M, s], [gc.sum(gc.tanh(M) * s), gc.grad(gc.sum(gc.tanh(M) * s), M)])
EXPORT_DIR = tempfile.mkdtemp()
gc.export(FN, f"{EXPORT_DIR}/exported_fn.py")
sys.path.insert(0, EXPORT_DIR)
import exported_fn  # noqa: E402


def reference(Xv, wv, tv):
    r = Xv @ wv - tv
    return np.sum(r * r), 2 * Xv.T @ r


def reference32(Mv, sv):
    th = np.tanh(Mv.astype(np.float64))
    return np.sum(th * sv), (1 - th ** 2) * sv


def variants(shape, dtype=np.float64):
    """(label, value) pairs of arguments for an input declared with `shape`."""
    rng = np.random.default_rng(len(shape))
    concrete = tuple(4 if d is None else d for d in shape)
    base = rng.uniform(-1, 1, concrete).astype(dtype)
    out = [("ok", base), ("list", base.tolist()), ("int32", (base * 3).astype(np.int32)),
           ("int64", (base * 3).astype(np.int64)), ("bool", base > 0),
           ("float32", base.astype(np.float32)), ("float64", base.astype(np.float64)),
           ("nan", np.where(base > 0.5, np.nan, base)), ("inf", np.where(base > 0.5, np.inf, base)),
           ("complex", base.astype(np.complex128)), ("object", base.astype(object)),
           ("str", base.astype(str)), ("None", None), ("dict", {"a": 1}),
           ("0-d", np.float64(0.5)), ("python float", 0.5)]
    readonly = base.copy()
    readonly.flags.writeable = False
    out.append(("read-only", readonly))
    if base.ndim >= 1:
        bigger = np.repeat(base, 2, axis=-1)
        out += [("negative stride", base[::-1]), ("strided", bigger[..., ::2]),
                ("fortran", np.asfortranarray(base)),
                ("extra dim", base[..., None]), ("ragged", [[1.0, 2.0], [3.0]])]
        for axis, d in enumerate(shape):
            wrong = list(concrete)
            wrong[axis] = concrete[axis] + 1
            out.append((f"dim{axis}+1", rng.uniform(-1, 1, wrong).astype(dtype)))
            zero = list(concrete)
            zero[axis] = 0
            out.append((f"dim{axis}=0", np.zeros(zero, dtype)))
    else:
        out += [("shape (1,)", np.ones(1)), ("shape (2,)", np.ones(2)), ("bool scalar", True),
                ("int scalar", 3), ("np.float32", np.float32(0.25))]
    return out


def classify(call, args, names, ref):
    try:
        got = call(*args)
    except (TypeError, ValueError) as exc:
        if any(f"'{n}'" in str(exc) for n in names):
            return "raised"
        return f"error without the input's name: {type(exc).__name__}: {exc}"
    except Exception as exc:
        return f"unexpected {type(exc).__name__}: {exc}"
    try:
        want = ref(*args)
    except Exception:
        return "worked where NumPy cannot compute the reference"
    for g, e in zip(got, want):
        if np.shape(g) != np.shape(e) or not np.allclose(g, e, rtol=1e-4, atol=1e-4,
                                                          equal_nan=True):
            return f"wrong result {g!r} vs {e!r}"
    return "worked"


def numeric_args(args, dtype):
    return [np.asarray(a, dtype=dtype) for a in args]


def main():
    counts, problems = {}, []
    valid = {"X": np.ones((4, 3)) * 0.3, "w": np.array([0.5, -1.0, 2.0]), "t": np.ones(4)}
    declared = {"X": (None, 3), "w": (3,), "t": (None,)}
    for target, call in itertools.product(["X", "w", "t"], [FN, exported_fn.fn]):
        for label, value in variants(declared[target]):
            args = [value if n == target else valid[n] for n in ("X", "w", "t")]
            outcome = classify(call, args, [target, "X", "t"],
                               lambda *a: reference(*numeric_args(a, np.float64)))
            counts[outcome.split(":")[0]] = counts.get(outcome.split(":")[0], 0) + 1
            if outcome not in ("worked", "raised"):
                problems.append(f"{target} {label}: {outcome}")
    valid32 = {"M": np.ones((2, 5), np.float32), "s": np.float32(0.5)}
    declared32 = {"M": (2, None), "s": ()}
    for target in ("M", "s"):
        for label, value in variants(declared32[target], np.float32):
            args = [value if n == target else valid32[n] for n in ("M", "s")]
            outcome = classify(FN32, args, [target],
                               lambda *a: reference32(*numeric_args(a, np.float32)))
            counts[outcome.split(":")[0]] = counts.get(outcome.split(":")[0], 0) + 1
            if outcome not in ("worked", "raised"):
                problems.append(f"{target} {label}: {outcome}")
    for call, arity in ((FN, 3), (exported_fn.fn, 3), (FN32, 2)):   # wrong argument counts
        for n in range(0, 6):
            if n == arity:
                continue
            try:
                call(*[np.ones(3)] * n)
                outcome = "no error for a wrong count"
            except TypeError:
                outcome = "raised"
            except Exception as exc:
                outcome = f"wrong error for a wrong count: {type(exc).__name__}"
            counts[outcome] = counts.get(outcome, 0) + 1
            if outcome != "raised":
                problems.append(outcome)
    rng = np.random.default_rng(7)                        # random shapes, random dtypes
    for _ in range(400):
        shapes = [tuple(rng.integers(0, 5, rng.integers(0, 4))) for _ in range(3)]
        dtypes = rng.choice([np.float64, np.float32, np.int64, np.bool_, np.complex64], 3)
        args = [np.ones(sh, dt) for sh, dt in zip(shapes, dtypes)]
        outcome = classify(FN, args, ["X", "w", "t"],
                           lambda *a: reference(*numeric_args(a, np.float64)))
        counts[outcome.split(":")[0]] = counts.get(outcome.split(":")[0], 0) + 1
        if outcome not in ("worked", "raised"):
            problems.append(f"random {shapes} {list(dtypes)}: {outcome}")
    print(json.dumps({"counts": counts, "total": sum(counts.values()), "problems": problems}))


if __name__ == "__main__":
    try:
        main()
    except Exception:
        traceback.print_exc()
        sys.exit(3)
