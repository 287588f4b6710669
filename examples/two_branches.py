"""A model with two branches over slices of its input features: the first 3 features go
through a tanh layer, the other 5 through a ReLU layer, and the two hidden
representations are concatenated before a linear read-out — slicing, concatenation and
their gradients, compiled into one kernel, checked against central differences."""

import numpy as np

import graphc as gc

rng = np.random.default_rng(0)
X, y = gc.tensor("X", (None, 8)), gc.tensor("y", (None,))
A, B, w = gc.tensor("A", (3, 4)), gc.tensor("B", (5, 6)), gc.tensor("w", (10,))
left = gc.tanh(X[:, :3] @ A)
right = gc.relu(X[:, 3:] @ B)
prediction = gc.concatenate([left, right], axis=1) @ w
loss = gc.mse(prediction, y)

point = {X: rng.normal(size=(32, 8)), y: rng.normal(size=32), A: rng.normal(size=(3, 4)),
         B: rng.normal(size=(5, 6)), w: rng.normal(size=10)}
report = gc.check_grad(loss, [A, B, w], point)
print(report)
fn = gc.compile([X, y, A, B, w], [loss, *gc.grad(loss, [A, B, w])])
print(f"loss {fn(*point.values())[0]:.4f}")
