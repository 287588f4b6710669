"""One gradient checker for every test: central differences and random-direction
VJP/JVP checks (as HIPS autograd's check_vjp and JAX's check_grads), run against every
backend: the reference interpreter, the eager tape and compiled Functions."""

from __future__ import annotations

import numpy as np

import graphc as gc
from graphc.graph import toposort
from graphc import tape


def central_difference(f, values, eps=1e-6):
    """d f / d values[i] for a scalar function of a list of float64 arrays."""
    grads = []
    for i, v in enumerate(values):
        g = np.zeros_like(v, dtype=np.float64)
        for idx in np.ndindex(v.shape):
            plus = [np.array(a, dtype=np.float64, copy=True) for a in values]
            minus = [np.array(a, dtype=np.float64, copy=True) for a in values]
            h = eps * max(1.0, abs(float(v[idx])))
            plus[i][idx] += h
            minus[i][idx] -= h
            g[idx] = (f(plus) - f(minus)) / (2 * h)
        grads.append(g)
    return grads


def graph_case(build, values, seed=0, prefix="a"):
    """Inputs, a scalar cost (the op's output weighted by a fixed random array) and its
    gradients, as graphs."""
    inputs = [gc.tensor(f"{prefix}{i}", np.shape(v), "float64") for i, v in enumerate(values)]
    out = build(*inputs)
    weights = np.random.default_rng(seed).uniform(0.5, 1.5, size=out.shape)
    cost = gc.sum(out * weights) if out.shape else out * 1.25
    return inputs, cost, gc.grad(cost, inputs), weights


def on_tape(build, values, weights):
    tensors = [tape.Tensor(np.array(v, dtype=np.float64), requires_grad=True) for v in values]
    out = build(*tensors)
    cost = gc.sum(out * weights) if np.shape(weights) else out * 1.25
    cost.backward()
    return float(cost.data), [t.grad for t in tensors]


def assert_close(got, want, what, rtol=1e-6, atol=1e-8):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=what)


def check_against_finite_differences(build, values, name, rtol=1e-5, atol=1e-7, prefix="a"):
    """The reference interpreter's gradient, the tape's and forward mode against
    central differences; returns the graph pieces for further backends."""
    inputs, cost, grads, weights = graph_case(build, values, prefix=prefix)
    feed = dict(zip(inputs, values))
    value, *analytic = gc.evaluate([cost] + grads, feed)

    def f(vals):
        return float(gc.evaluate(cost, dict(zip(inputs, vals))))
    numeric = central_difference(f, values)
    for i, (a, n) in enumerate(zip(analytic, numeric)):
        assert_close(a, n, f"{name}: d cost / d arg{i}, evaluate vs finite differences",
                     rtol, atol)
    tape_value, tape_grads = on_tape(build, values, weights)
    assert_close(tape_value, value, f"{name}: tape value")
    for i, (t, a) in enumerate(zip(tape_grads, analytic)):
        assert_close(t, a, f"{name}: d cost / d arg{i}, tape vs evaluate", 1e-10, 1e-12)
    # forward mode along a random direction: <grad, v> = jvp
    rng = np.random.default_rng(1)
    directions = [rng.standard_normal(np.shape(v)) for v in values]
    (tangent,) = gc.jvp([cost], inputs, [gc.const(d) for d in directions])
    expected = sum(float(np.sum(a * d)) for a, d in zip(analytic, directions))
    assert_close(gc.evaluate(tangent, feed), expected, f"{name}: jvp vs <grad, v>", 1e-8, 1e-10)
    return inputs, cost, grads, value, analytic


# ---------------------------------------------------------------------------------
# Bundles: many small graphs compiled together.  A Numba compilation costs about a
# second per Function plus a little per statement, so dozens of separate compiles cost
# minutes; but its cost also grows faster than linearly in the size of one function
# (measured: the op table's 180 checks as one 6,300-line kernel took several times as
# long as the same checks in 6 kernels of ~1,000 lines).  So a bundle is compiled in a
# few chunks of at most `chunk_nodes` graph nodes each (the graphs of one group, e.g.
# one op-table case, always in the same chunk).  A graph that fails to build is
# recorded against its own key only; a chunk that fails to compile is split in halves
# until the failing keys are isolated (so one bad case cannot hide the others, and a
# case that fails only together with others is reported as such).
# ---------------------------------------------------------------------------------

class Bundle:
    def __init__(self, name, chunk_nodes=350):
        self.name = name
        self.chunk_nodes = chunk_nodes
        self.groups = {}         # key -> group (kept in one chunk)
        self.entries = {}        # key -> (inputs, values, outputs)
        self.build_errors = {}   # key -> exception raised while building its graphs
        self.order = []
        self._compiled = {}      # level -> {key: list of values | exception}
        self._reference = None

    def add(self, key, make, group=None):
        """`make()` returns (inputs, values, outputs); inputs may be shared between keys
        (of the same group)."""
        assert key not in self.entries and key not in self.build_errors, key
        try:
            inputs, values, outputs = make()
            self.entries[key] = (list(inputs), list(values), list(outputs))
            self.groups[key] = key if group is None else group
            self.order.append(key)
        except Exception as exc:            # reported by the key's own test
            self.build_errors[key] = exc

    def __len__(self):
        return len(self.order)

    def graphs(self):
        """Every output of every entry (for op-coverage checks)."""
        return [o for k in self.order for o in self.entries[k][2]]

    def reference(self):
        """The reference interpreter's values for every key (or its exception)."""
        if self._reference is None:
            self._reference = {}
            for k in self.order:
                inputs, values, outputs = self.entries[k]
                try:
                    self._reference[k] = list(gc.evaluate(outputs, dict(zip(inputs, values))))
                except Exception as exc:
                    self._reference[k] = exc
        return self._reference

    def chunks(self):
        """The keys in consecutive chunks of at most chunk_nodes nodes (a group larger
        than that is a chunk of its own)."""
        chunks, current, nodes, group_keys = [], [], set(), {}
        for k in self.order:
            group_keys.setdefault(self.groups[k], []).append(k)
        for keys in group_keys.values():
            new = set(toposort([o for k in keys for o in self.entries[k][2]])) - nodes
            if current and len(nodes) + len(new) > self.chunk_nodes:
                chunks.append(current)
                current, nodes = [], set()
                new = set(toposort([o for k in keys for o in self.entries[k][2]]))
            current += keys
            nodes |= new
        if current:
            chunks.append(current)
        return chunks

    def compiled(self, level):
        if level not in self._compiled:
            results = {}
            for chunk in self.chunks():
                self._run(chunk, level, results)
            self._compiled[level] = results
        return self._compiled[level]

    def _run(self, keys, level, results):
        inputs, feeds, outputs, spans = [], [], [], []
        seen = set()
        for k in keys:
            ins, vals, outs = self.entries[k]
            for x, v in zip(ins, vals):
                if x not in seen:
                    seen.add(x)
                    inputs.append(x)
                    feeds.append(v)
            spans.append((k, len(outputs), len(outputs) + len(outs)))
            outputs += outs
        try:
            got = gc.compile(inputs, outputs, optimize=level)(*feeds)
        except Exception as exc:
            if len(keys) == 1:
                results[keys[0]] = exc
                return
            half = len(keys) // 2
            self._run(keys[:half], level, results)
            self._run(keys[half:], level, results)
            if not any(isinstance(results[k], Exception) for k in keys):
                for k in keys:     # each half works, the whole does not: a bug too
                    results[k] = RuntimeError(
                        f"{len(keys)} graphs fail to compile or run together, though each "
                        f"half works: {type(exc).__name__}: {exc}")
            return
        for k, lo, hi in spans:
            results[k] = list(got[lo:hi])

    def result(self, key, level=None):
        """(got, want) for a key: compiled at `level` (or None: the interpreter only);
        raises the build, interpreter or compile error recorded for it."""
        if key in self.build_errors:
            raise AssertionError(f"{self.name} {key!r}: building the graphs failed: "
                                 f"{type(self.build_errors[key]).__name__}: "
                                 f"{self.build_errors[key]}") from self.build_errors[key]
        want = self.reference()[key]
        if isinstance(want, Exception):
            raise AssertionError(f"{self.name} {key!r}: gc.evaluate failed: "
                                 f"{type(want).__name__}: {want}") from want
        if level is None:
            return None, want
        got = self.compiled(level)[key]
        if isinstance(got, Exception):
            raise AssertionError(f"{self.name} {key!r}: compiling at optimize={level!r} "
                                 f"failed: {type(got).__name__}: {got}") from got
        return got, want


def assert_same(got, want, what, rtol=1e-11, atol=1e-12):
    """Compiled against interpreted values: same shape, same kind of dtype (bool stays
    bool, a float result stays float), close values, and a NaN counts as a mismatch
    (two backends agreeing on NaN where the math is finite is still a bug)."""
    g, w = np.asarray(got), np.asarray(want)
    assert g.shape == w.shape, f"{what}: shape {g.shape} != {w.shape}"
    assert (g.dtype.kind == "b") == (w.dtype.kind == "b"), f"{what}: dtype {g.dtype} vs {w.dtype}"
    np.testing.assert_allclose(g.astype(np.float64), w.astype(np.float64), rtol=rtol,
                               atol=atol, equal_nan=False, err_msg=what)


def ops_in(outputs):
    return {n.op for n in toposort(list(outputs))}


_builtin = None


def builtin_ops():
    """The op table's own ops: not input/const, not derivative ops ("__d").  Read in a
    fresh interpreter, because other tests add ops to the global table while the suite
    runs (gc.elementwise, gc.custom_op) and those are not graphc's to cover."""
    global _builtin
    if _builtin is None:
        import os
        import subprocess
        import sys
        root = os.path.dirname(os.path.dirname(os.path.abspath(gc.__file__)))
        code = (f"import sys; sys.path.insert(0, {root!r}); import graphc.ops as o; "
                "print(o.__file__); print(' '.join(o.OPS))")
        where, names = subprocess.run([sys.executable, "-c", code], capture_output=True,
                                      text=True, check=True).stdout.split("\n", 1)
        assert os.path.samefile(where, sys.modules["graphc.ops"].__file__), where
        names = names.split()
        _builtin = {n for n in names if "__d" not in n and n not in ("input", "const")}
        assert _builtin, "no ops read from graphc.ops.OPS"
    return _builtin


_shared: dict = {}


def shared_bundle(name, fill):
    """One Bundle per name for the whole session (test files share compilations)."""
    if name not in _shared:
        bundle = Bundle(name)
        fill(bundle)
        _shared[name] = bundle
    return _shared[name]


# ---------------------------------------------------------------------------------
# Directional derivatives, orders 1 and 2 (autograd's check_vjp/check_jvp, JAX's
# check_grads): for out = f(x), a random output weight u and input direction v,
#   order 1: <u, J v> by jvp (forward mode), by vjp (grad of sum(out * u), dotted
#            with v) and by central differences of sum(u * f(x + h v));
#   order 2: the Hessian-vector product H v of c(x) = sum(out * u) by reverse over
#            reverse (grad of <grad c, v>), forward over reverse (jvp of grad c) and
#            reverse over forward (grad of <u, J v>), against central differences of
#            grad c along v.
# u and v are inputs, not constants, so no pass can fold them away.
# ---------------------------------------------------------------------------------

class Directional:
    def __init__(self, build, values, prefix, seed=0):
        rng = np.random.default_rng(seed)
        self.build_fn = build
        self.values = [np.asarray(v, dtype=np.float64) for v in values]
        self.xs = [gc.tensor(f"{prefix}x{i}", v.shape) for i, v in enumerate(self.values)]
        self.out = build(*self.xs)
        self.u_value = rng.standard_normal(self.out.shape)
        self.v_values = [rng.standard_normal(v.shape) for v in self.values]
        self.u = gc.tensor(f"{prefix}u", self.out.shape)
        self.vs = [gc.tensor(f"{prefix}v{i}", v.shape) for i, v in enumerate(self.values)]
        self.cost = gc.sum(self.out * self.u)
        self.grads = gc.grad(self.cost, self.xs)
        self.vjp_dot = _dot_all(self.grads, self.vs)
        self._jvp_dot = None

    @property
    def inputs(self):
        return self.xs + [self.u] + self.vs

    @property
    def feeds(self):
        return self.values + [self.u_value] + self.v_values

    @property
    def jvp_dot(self):
        if self._jvp_dot is None:
            (t,) = gc.jvp([self.out], self.xs, self.vs)
            self._jvp_dot = gc.sum(t * self.u)
        return self._jvp_dot

    def order1(self):
        """[<u, J v> by jvp, <u, J v> by vjp]"""
        return [self.jvp_dot, self.vjp_dot]

    def hvp_rr(self):
        """H v by reverse over reverse: grad <grad c, v> (one per input)."""
        return gc.grad(self.vjp_dot, self.xs)

    def hvp_fr(self):
        """H v by forward over reverse: jvp of grad c along v."""
        return gc.jvp(self.grads, self.xs, self.vs)

    def hvp_rf(self):
        """H v by reverse over forward: grad <u, J v>."""
        return gc.grad(self.jvp_dot, self.xs)

    def shifted(self, h):
        return dict(zip(self.inputs, [x + h * v for x, v in zip(self.values, self.v_values)]
                        + [self.u_value] + self.v_values))

    def fd_directional(self, h=1e-5):
        """Central differences of sum(u * f(x + t v)) at t = 0."""
        plus = float(gc.evaluate(self.cost, self.shifted(h)))
        minus = float(gc.evaluate(self.cost, self.shifted(-h)))
        return (plus - minus) / (2 * h)

    def fd_hvp(self, h=1e-5):
        """Central differences of grad c along v."""
        plus = gc.evaluate(self.grads, self.shifted(h))
        minus = gc.evaluate(self.grads, self.shifted(-h))
        return [(p - m) / (2 * h) for p, m in zip(plus, minus)]

    def on_tape(self):
        """The tape's reverse mode from the output, seeded with u: (out, grads).  The
        tape's contract: every leaf has a gradient of its shape after backward()."""
        ts = [tape.Tensor(v.copy(), requires_grad=True) for v in self.values]
        out = self.build_fn(*ts)
        out.backward(self.u_value)
        for i, t in enumerate(ts):
            assert t.grad is not None, f"tape: leaf {i} has .grad None after backward()"
            assert t.grad.shape == t.shape, f"tape: leaf {i} grad shape {t.grad.shape}"
        return out.data, [t.grad for t in ts]


def _dot_all(xs, ys):
    total = None
    for x, y in zip(xs, ys):
        term = gc.sum(x * y)
        total = term if total is None else total + term
    return total


def _dot_values(xs, ys):
    return float(sum(np.sum(np.asarray(x, np.float64) * y) for x, y in zip(xs, ys)))
