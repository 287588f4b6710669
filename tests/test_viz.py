"""Seeing backpropagation: trace tables, explanations, reports, gradient checks, DOT."""

import shutil

import numpy as np
import pytest
import sympy

import graphc as gc
from graphc import cli
from graphc.viz_cli import ExpressionError, parse_expression


def worked_example():
    x, y, z = gc.scalar("x"), gc.scalar("y"), gc.scalar("z")
    return (x + y) * z, {x: -2.0, y: 5.0, z: -4.0}


def test_trace_reproduces_the_textbook_numbers():
    f, point = worked_example()
    t = gc.trace(f, point)
    forward = {r["node"]: float(r["value"]) for r in t.forward}
    assert forward == {"q": 3.0, "f": -12.0}
    backward = {r["target"]: float(r["value"]) for r in t.backward}
    assert backward == {"∂f/∂f": 1.0, "∂f/∂z": 3.0, "∂f/∂q": -4.0, "∂f/∂x": -4.0,
                        "∂f/∂y": -4.0}
    rows = {r["target"]: r for r in t.rows()["backward"]}
    assert rows["∂f/∂q"]["using"] == "f" and rows["∂f/∂q"]["calculation"] == "∂f/∂f · z"
    assert rows["∂f/∂z"]["calculation"] == "∂f/∂f · q"
    assert "| q | q = x + y | 3 |" in t.to_markdown()
    assert "backward pass" in t.to_text()


def test_trace_sums_over_every_successor():
    x, y = gc.scalar("x"), gc.scalar("y")
    t = gc.trace(x * x + x * y, {x: 1.5, y: -0.5})
    row = next(r for r in t.backward if r["target"] == "∂f/∂x")
    assert row["calculation"].count("+") == 1 and float(row["value"]) == 2 * 1.5 - 0.5


def chain(L=3):
    ws = [gc.scalar(f"w{i}") for i in range(1, L + 1)]
    bs = [gc.scalar(f"b{i}") for i in range(1, L + 1)]
    a0, y = gc.scalar("a0"), gc.scalar("y")
    a, acts = a0, []
    for w, b in zip(ws, bs):
        a = gc.sigmoid(w * a + b)
        acts.append(a)
    return ws, bs, a0, y, acts, gc.square(a - y)


def test_explain_the_chain_rule_factors():
    ws, bs, a0, y, acts, C = chain()
    point = {**dict(zip(ws, [0.5, -1.0, 2.0])), **dict(zip(bs, [0.1, 0.2, -0.3])),
             a0: 0.9, y: 0.2}
    e = gc.explain(C, ws[-1], at=point, names={acts[-1]: "a_L", acts[-2]: "a_prev", C: "C"})
    aL, ap, yy = sympy.symbols("a_L a_prev y", real=True)
    assert sympy.simplify(e.expression - ap * aL * (1 - aL) * 2 * (aL - yy)) == 0
    a = [0.9]
    for w, b in zip([0.5, -1.0, 2.0], [0.1, 0.2, -0.3]):
        a.append(1 / (1 + np.exp(-(w * a[-1] + b))))
    assert float(e.value) == pytest.approx(a[2] * a[3] * (1 - a[3]) * 2 * (a[3] - 0.2))
    product = np.prod([v for _, v in e.factors])
    assert product == pytest.approx(float(e.value))
    assert "∂C/∂w3" in e.text and "a_{L}" in e.latex


def test_gradient_report_flags_vanishing_sigmoid_chains_not_relu():
    def deep(activation, L=30):
        ws = [gc.scalar(f"w{i}") for i in range(L)]
        a = gc.scalar("a0")
        for w in ws:
            a = activation(w * a + 0.1)
        cost = gc.square(a - 0.3)
        point = {x: (1.0 if x in ws else 0.5) for x in gc.graph.inputs_of([cost])}
        return gc.gradient_report(cost, ws, point)
    sig, rel = deep(gc.sigmoid), deep(gc.relu)
    assert any("vanishing" in w for w in sig.warnings)
    assert sig.layer_norms[0][1] < 1e-3 * sig.layer_norms[-1][1]    # σ' <= 1/4 per layer
    assert not rel.warnings and rel.ratio < 100


def test_check_grad_catches_a_wrong_gradient():
    x = gc.vector("x", 3)
    cost = gc.sum(gc.sin(x) * x)
    point = {x: np.array([0.3, -1.2, 2.0])}
    good = gc.check_grad(cost, x, point)
    assert good.ok and good.errors["x"] < 1e-6
    bad = gc.check_grad(cost, x, point, gradient=[gc.cos(x) * x])   # forgot sin(x)
    assert not bad.ok and bad.errors["x"] > 0.1


def test_to_dot():
    f, point = worked_example()
    x, y, z = list(point)
    dot = gc.to_dot(f, grads=gc.grad(f, [x, y, z]), values=point)
    assert dot.startswith("digraph") and 'label="add' in dot and "-> " in dot
    assert "= -12" in dot and 'color="red"' in dot          # the gradient graph, in red
    assert "∂ = -4" in dot and "∂ = 3" in dot               # adjoints on the forward nodes
    w = gc.vector("w", 3)
    collapsed = gc.to_dot(gc.sum(gc.sigmoid(gc.tanh(w * 2.0) + 1.0)), collapse_elementwise=True)
    assert "sigmoid ∘ add ∘ tanh ∘ mul" in collapsed
    small = gc.to_dot(f, max_nodes=2)
    assert "more nodes" in small and small.count("[label=") == 3


def test_cli_explain_and_trace(capsys):
    assert cli.main(["trace", "(x + y) * z", "--at", "x=-2,y=5,z=-4"]) == 0
    out = capsys.readouterr().out
    assert "q = x + y" in out and "-12" in out
    assert cli.main(["explain", "sigmoid(w*a + b)", "--wrt", "w", "--at", "w=0.5,a=2,b=-1"]) == 0
    assert "= 0.5" in capsys.readouterr().out


@pytest.mark.parametrize("text", ["__import__('os')", "x.__class__", "open('f')", "[x]",
                                  "lambda: 1", "x if y else z"])
def test_cli_refuses_unsafe_expressions(text):
    with pytest.raises(ExpressionError):
        parse_expression(text)


# --- notebook display ------------------------------------------------------------------

def test_expr_repr_latex_is_the_formula():
    f, _ = worked_example()
    assert f._repr_latex_() == r"$z \left(x + y\right)$"
    x = gc.scalar("x")
    assert gc.sigmoid(x)._repr_latex_() == r"$\frac{1}{1 + e^{- x}}$"
    assert gc.sum(gc.vector("w_b", 3) * 2.0)._repr_latex_() == \
        r"$\operatorname{sum}{\left(2 w_{b} \right)}$"


def test_expr_repr_latex_of_a_large_graph_is_a_bounded_summary():
    from graphc import symbolic
    x = gc.scalar("x")
    a = x
    for _ in range(200):            # as a tree the formula has ~2**200 terms
        a = gc.sin(a) * a
    shown = a._repr_latex_()
    assert shown == r"$\text{mul(...): a graph of 401 nodes, float64 ()}$"
    wide = gc.sum(gc.vector("v", 3) * 2.0)
    for i in range(symbolic.LATEX_MAX_TERMS):       # many distinct terms: a summary too
        wide = wide + gc.scalar(f"y_{i}")
    assert wide._repr_latex_().startswith(r"$\text{add(...): a graph of ")
    assert len(wide._repr_latex_()) < 100


def test_trace_repr_html_has_the_tables_escaped():
    f, point = worked_example()
    t = gc.trace(f, point)
    page = t._repr_html_()
    assert page.count("<table>") == 2 and "<caption>forward pass</caption>" in page
    assert "<tr><td>q</td><td>q = x + y</td><td style=\"text-align:right\">3</td></tr>" in page
    assert ("<tr><td>f</td><td>f = q · z</td><td style=\"text-align:right\">-12</td></tr>"
            in page)
    assert ("<tr><td>∂f/∂z</td><td>f</td><td>∂f/∂f · q</td>"
            "<td style=\"text-align:right\">3</td></tr>") in page
    x, y, z = list(point)
    odd = gc.trace(f, point, names={x: "x<1>&"})._repr_html_()
    assert "x&lt;1&gt;&amp;" in odd and "x<1>" not in odd


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_to_dot_repr_svg_draws_the_graph():
    f, point = worked_example()
    dot = gc.to_dot(f, values=point)
    svg = dot._repr_svg_()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and svg.rstrip().endswith("</svg>")
    assert ">add<" in svg and ">mul<" in svg and ">x<" in svg      # the nodes' labels
    assert svg.count('class="node"') == 5 and svg.count('class="edge"') == 4


def test_to_dot_repr_svg_without_graphviz_is_none(monkeypatch):
    f, _ = worked_example()
    dot = gc.to_dot(f)
    assert isinstance(dot, str) and dot.startswith("digraph")     # still the DOT text
    monkeypatch.setenv("PATH", "")
    assert dot._repr_svg_() is None          # the notebook falls back to the text
