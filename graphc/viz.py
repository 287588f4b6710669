"""Seeing backpropagation: graph pictures, forward/backward trace tables, the chain-rule
factors of a gradient, gradient reports, and gradient checks.

These are the objects the classic lessons draw by hand - the computation graph, the
forward table (node, computation, value), the backward table (target, using which
successors, calculation, value) - computed from the same graphs graphc compiles."""

from __future__ import annotations

import html
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .autodiff import grad
from .graph import Expr, toposort
from .interpreter import evaluate
from .ops import OPS

_INFIX = {"add": "+", "sub": "-", "mul": "·", "div": "/", "pow": "^"}


def _names(cost, names=None):
    """Readable names: inputs by their names, the cost "f", intermediates q, r, s, ..."""
    names = dict(names or {})
    letters = iter([c for c in "qrstuvwabcdeghkmnp"] + [f"t{i}" for i in range(10_000)])
    for node in toposort([cost]):
        if node in names:
            continue
        if node.is_input:
            names[node] = node.name
        elif node.is_const:
            names[node] = _number(node)
        elif node is cost:
            names[node] = "f"
        else:
            name = next(letters)
            while name in names.values():
                name = next(letters)
            names[node] = name
    return names


def _number(node):
    if node.shape == ():
        v = float(node.value)
        return f"{v:g}"
    return f"const{list(node.shape)}"


def _computation(node, names):
    args = [names[a] for a in node.args]
    if node.op in _INFIX and len(args) == 2:
        return f"{args[0]} {_INFIX[node.op]} {args[1]}"
    if node.op == "neg":
        return f"-{args[0]}"
    params = "".join(f", {k}={v}" for k, v in node.params if k != "dtype")
    return f"{node.op}({', '.join(args)}{params})"


def _fmt(value):
    arr = np.asarray(value)
    if arr.shape == ():
        return f"{float(arr):.6g}"
    return np.array2string(arr, precision=4, threshold=6, separator=", ")


@dataclass
class Trace:
    """The forward and backward tables of one evaluation."""
    forward: list = field(default_factory=list)     # dicts: node, computation, value
    backward: list = field(default_factory=list)    # dicts: target, using, calculation, value

    def rows(self):
        return {"forward": [dict(r) for r in self.forward],
                "backward": [dict(r) for r in self.backward]}

    def to_markdown(self):
        lines = ["| node | computation | value |", "|---|---|---:|"]
        lines += [f"| {r['node']} | {r['computation']} | {_fmt(r['value'])} |"
                  for r in self.forward]
        lines += ["", "| target | using | calculation | value |", "|---|---|---|---:|"]
        lines += [f"| {r['target']} | {r['using']} | {r['calculation']} | {_fmt(r['value'])} |"
                  for r in self.backward]
        return "\n".join(lines)

    def to_text(self):
        def table(header, rows):
            cells = [header] + [[str(c) for c in row] for row in rows]
            widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
            out = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
            out.insert(1, "  ".join("-" * w for w in widths))
            return "\n".join(out)
        forward = table(["node", "computation", "value"],
                        [[r["node"], r["computation"], _fmt(r["value"])] for r in self.forward])
        backward = table(["target", "using", "calculation", "value"],
                         [[r["target"], r["using"], r["calculation"], _fmt(r["value"])]
                          for r in self.backward])
        return f"forward pass\n{forward}\n\nbackward pass\n{backward}"

    __str__ = to_text

    #: Rows shown per table in a notebook; the rest are counted in a last row.
    HTML_MAX_ROWS = 500

    def _repr_html_(self):
        """The two tables as HTML (for notebooks), every cell escaped."""
        def table(caption, header, rows):
            out = [f"<table><caption>{caption}</caption><thead><tr>"
                   + "".join(f"<th>{h}</th>" for h in header) + "</tr></thead><tbody>"]
            for row in rows[:self.HTML_MAX_ROWS]:
                *text, value = row
                out.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in text)
                           + f'<td style="text-align:right">{html.escape(_fmt(value))}</td></tr>')
            if len(rows) > self.HTML_MAX_ROWS:
                out.append(f'<tr><td colspan="{len(header)}">... '
                           f"{len(rows) - self.HTML_MAX_ROWS} more rows</td></tr>")
            return "".join(out) + "</tbody></table>"
        forward = table("forward pass", ["node", "computation", "value"],
                        [(r["node"], r["computation"], r["value"]) for r in self.forward])
        backward = table("backward pass", ["target", "using", "calculation", "value"],
                         [(r["target"], r["using"], r["calculation"], r["value"])
                          for r in self.backward])
        return f"<div>{forward}{backward}</div>"


def _local_derivative(node, arg, names):
    """∂node/∂arg as text, from the op's SymPy form where it has one."""
    op = OPS[node.op]
    if op.kind == "elementwise" and op.sym is not None:
        import sympy
        symbols = [sympy.Symbol(names[a], real=True) for a in node.args]
        d = sympy.diff(op.sym(sympy, *symbols), symbols[node.args.index(arg)])
        return str(sympy.simplify(d)).replace("*", "·")
    return f"∂{names[node]}/∂{names[arg]}"


def trace(cost, feed, names=None):
    """The forward and backward tables of `cost` at the point `feed` ({input: value})."""
    if not isinstance(cost, Expr) or cost.shape != ():
        raise ValueError("trace: the cost must be a scalar expression")
    labels = _names(cost, names)
    order = toposort([cost])
    nodes = [n for n in order if not n.is_const]
    values = dict(zip(nodes, evaluate(nodes, feed)))
    floats = [n for n in nodes if n.dtype.kind == "f"]     # int/bool nodes have no adjoint
    adjoints = dict(zip(floats, evaluate(grad(cost, floats), feed)))
    result = Trace()
    for node in nodes:
        if not node.is_input:
            result.forward.append({"node": labels[node],
                                   "computation": f"{labels[node]} = {_computation(node, labels)}",
                                   "value": values[node]})
    successors = {n: [] for n in nodes}
    for node in nodes:
        for a in dict.fromkeys(node.args):
            if a in successors:
                successors[a].append(node)
    f = labels[cost]
    for node in reversed(nodes):
        if node not in adjoints:
            continue
        if node is cost:
            result.backward.append({"target": f"∂{f}/∂{f}", "using": "-", "calculation": "1",
                                    "value": adjoints[node]})
            continue
        terms = [f"∂{f}/∂{labels[s]} · {_local_derivative(s, node, labels)}"
                 for s in successors[node]]
        result.backward.append({"target": f"∂{f}/∂{labels[node]}",
                                "using": ", ".join(labels[s] for s in successors[node]) or "-",
                                "calculation": " + ".join(terms) or "0",
                                "value": adjoints[node]})
    return result


@dataclass
class Explanation:
    """The chain-rule factors of one gradient: (factor, value) pairs and their product."""
    target: str
    expression: object           # the SymPy expression of the gradient
    factors: list                # (SymPy factor, value at the point or None)
    value: object = None

    @property
    def text(self):
        parts = [f"({f})" if f.is_Add else str(f) for f, _ in self.factors]
        lines = [f"{self.target} = {' · '.join(parts)}"]
        if self.value is not None:
            lines.append("  at the point: " + " · ".join(
                f"{p} = {_fmt(v)}" for p, (_, v) in zip(parts, self.factors)))
            lines.append(f"  {self.target} = {_fmt(self.value)}")
        return "\n".join(lines)

    @property
    def latex(self):
        import sympy
        return sympy.latex(self.expression)

    __str__ = text.fget


def explain(cost, wrt, at=None, names=None):
    """∂cost/∂wrt as a product of chain-rule factors, symbolically (intermediate nodes
    named by `names`, e.g. {a_prev: "a_{L-1}"}) and, with `at` ({input: value}), with
    each factor's value."""
    import sympy

    from .symbolic import to_sympy
    names = dict(names or {})
    g = grad(cost, wrt)
    expression = to_sympy(g, names)      # a product as backpropagation built it
    factors = list(sympy.Mul.make_args(expression))
    valued, total = [], None
    if at is not None:
        named = [n for n in names if not n.is_input]
        known = dict(zip(named, evaluate(named, at))) if named else {}
        subs = {sympy.Symbol(names.get(k, getattr(k, "name", "")), real=True): float(v)
                for k, v in {**at, **known}.items() if np.ndim(v) == 0}
        valued = [(fct, float(fct.subs(subs))) for fct in factors]
        total = evaluate(g, at)
    else:
        valued = [(fct, None) for fct in factors]
    target = f"∂{names.get(cost, 'C')}/∂{names.get(wrt, getattr(wrt, 'name', None) or 'x')}"
    return Explanation(target, expression, valued, total)


@dataclass
class GradientReport:
    norms: dict                  # parameter name -> L2 norm of its gradient
    layer_norms: list            # (layer label, norm)
    warnings: list

    @property
    def ratio(self):
        values = [v for v in self.norms.values() if v > 0]
        return max(values) / min(values) if values else float("nan")

    @property
    def text(self):
        lines = [f"{name:>12}  |grad| = {norm:.3e}" for name, norm in self.norms.items()]
        lines.append(f"most / least sensitive parameter: {self.ratio:.3e}")
        lines += [f"{label:>12}  layer |grad| = {norm:.3e}" for label, norm in self.layer_norms]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    __str__ = text.fget


#: A layer whose gradient norm is below VANISHING times the largest layer's is flagged
#: as vanishing; any layer norm above EXPLODING is flagged as exploding.
VANISHING, EXPLODING = 1e-3, 1e3


def gradient_report(cost, params, at, layers=None):
    """Gradient norms of `params` at the point `at`, per parameter and per layer
    (`layers`: a list of (label, [params]); default one layer per parameter)."""
    grads = evaluate(grad(cost, list(params)), at)
    norms = {p.name: float(np.linalg.norm(g)) for p, g in zip(params, grads)}
    layers = layers or [(p.name, [p]) for p in params]
    layer_norms = [(label, float(np.sqrt(sum(norms[p.name] ** 2 for p in ps))))
                   for label, ps in layers]
    warnings = []
    top = max((n for _, n in layer_norms), default=0.0)
    for label, n in layer_norms:
        if top > 0 and n < VANISHING * top:
            warnings.append(f"vanishing gradient: {label} has |grad| = {n:.1e}, "
                            f"{n / top:.1e} of the largest layer's")
        if n > EXPLODING:
            warnings.append(f"exploding gradient: {label} has |grad| = {n:.1e}")
    return GradientReport(norms, layer_norms, warnings)


@dataclass
class GradCheck:
    errors: dict                 # input name -> worst relative error
    tolerance: float

    @property
    def ok(self):
        return all(e <= self.tolerance for e in self.errors.values())

    def __str__(self):
        rows = [f"{n:>12}  worst relative error {e:.2e}" for n, e in self.errors.items()]
        return "\n".join(rows + [f"{'ok' if self.ok else 'MISMATCH'} (tolerance {self.tolerance:g})"])


def _working_precision(cost):
    """The least precise float dtype `cost` is computed in (over the nodes that compute:
    a float32 input of a float64 computation is only quantised)."""
    floats = {n.dtype for n in toposort([cost]) if n.args and n.dtype.kind == "f"}
    return min(floats, key=lambda d: d.itemsize, default=np.dtype(np.float64))


#: Default tolerance of check_grad's worst relative error, by the cost's dtype
#: (float32 central differences carry about 1e-3 of rounding error; as JAX's
#: check_grads, whose float32 gradient tolerance is 2e-2 — we use 1e-2).
GRAD_TOLERANCE = {np.dtype(np.float64): 1e-5, np.dtype(np.float32): 1e-2}


def check_grad(cost, wrt, point, eps=None, tolerance=None, gradient=None):
    """Compare the compiled gradient of `cost` (or `gradient`, a list of graphs to test
    in its place) with central differences at `point` ({input: value}).

    Differences are taken with the step that balances truncation and rounding error
    of the precision the cost is computed in (its least precise float node),
    ``eps = machine epsilon ** (1/3)`` (6e-6 for float64, 5e-3 for float32), each step
    exactly representable in its input's dtype.  A
    relative error is measured against the larger of the two values, and at least
    against ``machine epsilon * max(|cost|, 1) / (step * tolerance)``: the rounding
    error a central difference carries, scaled so that pure rounding noise on an entry
    near zero counts at most as the tolerance, not as a mismatch."""
    from .function import compile as compile_function
    wrt = [wrt] if isinstance(wrt, Expr) else list(wrt)
    inputs = list(point)
    grads = gradient if gradient is not None else grad(cost, wrt)
    fn = compile_function(inputs, [cost] + list(grads))
    base = [np.array(point[x], dtype=x.dtype) for x in inputs]
    analytic = fn(*base)[1:]
    precision = _working_precision(cost)
    if tolerance is None:
        tolerance = GRAD_TOLERANCE.get(precision, 1e-5)
    finfo = np.finfo(precision)
    step = float(finfo.eps) ** (1 / 3) if eps is None else eps
    errors = {}
    for w, a in zip(wrt, analytic):
        i = inputs.index(w)
        a = np.asarray(a, dtype=np.float64)
        worst = 0.0
        for idx in np.ndindex(np.shape(base[i])):
            plus, minus = [b.copy() for b in base], [b.copy() for b in base]
            x = base[i][idx]
            h = w.dtype.type(step * max(1.0, abs(float(x))))
            plus[i][idx], minus[i][idx] = x + h, x - h
            width = float(plus[i][idx]) - float(minus[i][idx])     # the step as rounded
            f_plus, f_minus = float(fn(*plus)[0]), float(fn(*minus)[0])
            numeric = (f_plus - f_minus) / width
            noise = float(finfo.eps) * max(abs(f_plus), abs(f_minus), 1.0) / width
            floor = max(noise / tolerance, 1e-300)
            got = float(a[idx])
            worst = max(worst, abs(got - numeric) / max(floor, abs(got), abs(numeric)))
        errors[w.name] = worst
    return GradCheck(errors, tolerance)


def _collapse(nodes):
    """Map each node to the box it is drawn in: a chain of elementwise nodes, each the
    only argument-consumer of the one before and of the same shape, is one box."""
    consumers = {n: [] for n in nodes}
    for n in nodes:
        for a in n.args:
            if a in consumers:
                consumers[a].append(n)
    box = {}
    for n in reversed(nodes):
        users = consumers[n]
        fusible = (len(users) == 1 and OPS.get(n.op) is not None and
                   OPS[n.op].kind == "elementwise" and OPS[users[0].op].kind == "elementwise"
                   and users[0].shape == n.shape and not n.is_input)
        box[n] = box[users[0]] if fusible else n
    return box


class Dot(str):
    """DOT text (what ``to_dot`` returns: a ``str``) that a notebook shows as a picture
    when Graphviz's ``dot`` is installed."""

    #: Seconds ``dot`` may take to lay a graph out before the notebook gives up on it.
    TIMEOUT = 20.0

    def _repr_svg_(self):
        """The graph as SVG, drawn by Graphviz's ``dot``; None (the notebook then shows
        the text) when ``dot`` is not on PATH, fails, or takes longer than TIMEOUT."""
        exe = shutil.which("dot")
        if exe is None:
            return None
        try:
            done = subprocess.run([exe, "-Tsvg"], input=str(self).encode(),
                                  capture_output=True, timeout=self.TIMEOUT)
        except (OSError, subprocess.SubprocessError):
            return None
        if done.returncode != 0:
            return None
        return done.stdout.decode("utf-8", errors="replace")


def to_dot(outputs, grads=None, values=None, max_nodes=200, collapse_elementwise=False):
    """Graphviz DOT text of the forward graph, and of `grads` (the gradient graph) in
    red.  With `values` ({input: value}) every node shows its value and, when the first
    output is a scalar cost, its adjoint ∂cost/∂node.  Graphs larger than `max_nodes`
    are cut, with a node saying how many were left out; `collapse_elementwise` draws
    each chain of elementwise nodes as one box.  Returns a ``Dot``: the text, as a
    ``str``, that a notebook draws (``_repr_svg_``) when Graphviz is installed."""
    outputs = [outputs] if isinstance(outputs, Expr) else list(outputs)
    grads = list(grads or [])
    forward = toposort(outputs)
    in_forward = set(forward)
    backward = [n for n in toposort(grads) if n not in in_forward] if grads else []
    everything = forward + backward
    box = _collapse(everything) if collapse_elementwise else {n: n for n in everything}
    boxes = list(dict.fromkeys(box[n] for n in everything))
    shown = boxes[:max_nodes]
    hidden = len(boxes) - len(shown)
    ids = {n: f"n{i}" for i, n in enumerate(shown)}
    evaluated, adjoint = {}, {}
    if values is not None:
        evaluated = dict(zip(shown, evaluate(shown, values)))
        if outputs[0].shape == ():
            nodes = [n for n in shown if n in in_forward and not n.is_const]
            adjoint = dict(zip(nodes, evaluate(grad(outputs[0], nodes), values)))
    members = {}
    for n in everything:
        members.setdefault(box[n], []).append(n)
    lines = ["digraph graphc {", "  rankdir=LR;", '  node [shape=box, fontname="Helvetica"];']
    back = set(backward)
    for n in shown:
        if n.is_input:
            label = n.name
        elif n.is_const:
            label = _number(n)
        else:
            label = " ∘ ".join("scan" if getattr(OPS.get(m.op), "dot_cluster", None) else m.op
                               for m in reversed(members[n]))
        label += f"\\n{tuple(n.shape)}" if n.shape else ""
        if n in evaluated:
            label += f"\\n= {_fmt(evaluated[n])}"
        if n in adjoint:
            label += f"\\n∂ = {_fmt(adjoint[n])}"
        style = ', color="red"' if n in back else (', style=filled, fillcolor="#eef"'
                                                    if n.is_input else "")
        lines.append(f'  {ids[n]} [label="{label}"{style}];')
        cluster = getattr(OPS.get(n.op), "dot_cluster", None)     # a gc.scan: its body
        if cluster is not None and not n.is_input:
            lines.extend(cluster(ids[n]))
    edges = set()
    for n in everything:
        for a in n.args:
            src, dst = box[a], box[n]
            if src is not dst and src in ids and dst in ids and (src, dst) not in edges:
                edges.add((src, dst))
                lines.append(f"  {ids[src]} -> {ids[dst]};")
    if hidden:
        lines.append(f'  more [label="... {hidden} more nodes", shape=plaintext];')
    lines.append("}")
    return Dot("\n".join(lines) + "\n")


def render_dot(dot_text, path):
    """Render DOT to SVG/PNG (by the suffix of `path`) with Graphviz's ``dot`` if it is
    installed; otherwise write the DOT text next to it.  Returns the path written."""
    path = Path(path)
    exe = shutil.which("dot")
    if exe is None:
        fallback = path.with_suffix(".dot")
        fallback.write_text(dot_text)
        return fallback
    subprocess.run([exe, f"-T{path.suffix.lstrip('.') or 'svg'}", "-o", str(path)],
                   input=dot_text.encode(), check=True)
    return path


__all__ = [
    "Dot",
    "Explanation",
    "GradCheck",
    "GradientReport",
    "Trace",
    "check_grad",
    "explain",
    "gradient_report",
    "render_dot",
    "to_dot",
    "trace",
]
