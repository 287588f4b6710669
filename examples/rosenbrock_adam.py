"""Minimise the Rosenbrock function (1 - x)^2 + 100 (y - x^2)^2 with graphc's Adam:
the whole step - gradient and update - is one compiled kernel call."""

import numpy as np

import graphc as gc
from graphc import optim

p = gc.vector("p", 2)
x, y = gc.sum(p * np.array([1.0, 0.0])), gc.sum(p * np.array([0.0, 1.0]))
rosenbrock = gc.square(1.0 - x) + 100.0 * gc.square(y - gc.square(x))

step = optim.compile_step(rosenbrock, [p], [], optim.Adam(lr=0.02),
                          init={p: np.array([-1.5, 2.0])})
for i in range(1, 5001):
    value = step()
    if i % 1000 == 0:
        print(f"step {i:5d}  f = {value:.3e}  p = {step.params['p']}")
assert np.allclose(step.params["p"], [1.0, 1.0], atol=1e-2), step.params["p"]
