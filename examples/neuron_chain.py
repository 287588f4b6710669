"""The one-neuron-per-layer chain a_l = sigmoid(w_l a_(l-1) + b_l), C = (a_L - y)^2,
trained by plain gradient descent with a compiled value-and-gradient function."""

import numpy as np

import graphc as gc

L = 4
ws = [gc.scalar(f"w{l}") for l in range(1, L + 1)]
bs = [gc.scalar(f"b{l}") for l in range(1, L + 1)]
a0, y = gc.scalar("a0"), gc.scalar("y")
a = a0
for w, b in zip(ws, bs):
    a = gc.sigmoid(w * a + b)
cost = gc.square(a - y)
params = ws + bs
value_and_grad = gc.compile(params + [a0, y], [cost] + gc.grad(cost, params))

rng = np.random.default_rng(0)
theta = rng.normal(0, 1, 2 * L)
for it in range(201):
    c, *g = value_and_grad(*theta, 1.0, 0.2)       # input a0 = 1, target y = 0.2
    theta -= 2.0 * np.array(g)
    if it % 50 == 0:
        print(f"step {it:3d}  cost {c:.3e}")
print("output a_L after training:",
      float(gc.evaluate(a, dict(zip(params + [a0], list(theta) + [1.0])))))
