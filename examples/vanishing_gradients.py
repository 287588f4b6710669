"""Stacked sigmoids make gradients vanish (σ' <= 1/4 per layer); ReLU chains do not.

For one-neuron-per-layer chains of depth 10, 20 and 50 this prints the gradient norm of
the first and the last layer's weight, and graphc's warning."""

import graphc as gc

for activation in (gc.sigmoid, gc.relu):
    for depth in (10, 20, 50):
        ws = [gc.scalar(f"w{i}") for i in range(depth)]
        a0 = gc.scalar("a0")
        a = a0
        for w in ws:
            a = activation(w * a + 0.1)
        cost = gc.square(a - 0.3)
        point = {**{w: 1.0 for w in ws}, a0: 0.5}
        report = gc.gradient_report(cost, ws, point)
        first, last = report.norms[ws[0].name], report.norms[ws[-1].name]
        print(f"{activation.__name__:>7} depth {depth:2d}: |dC/dw_1| = {first:.2e}  "
              f"|dC/dw_L| = {last:.2e}  {'; '.join(report.warnings[:1]) or 'no warning'}")
