"""An MNIST MLP trained with a hand-written loop around a compiled value-and-gradient
Function: graphc computes loss and gradients, the loop does SGD with momentum in NumPy."""

import time

import numpy as np

import graphc as gc
from graphc import data, nn

mnist = data.load_mnist()
x_train, y_train = mnist.x_train, data.one_hot(mnist.y_train)
x_test, y_test = mnist.x_test, data.one_hot(mnist.y_test)

X, Y = gc.tensor("X", (None, 784), "float32"), gc.tensor("Y", (None, 10), "float32")
logits, params, init = nn.mlp(X, (784, 128, 10), "sigmoid")
loss = nn.softmax_cross_entropy(logits, Y)
value_and_grad = gc.compile([X, Y] + params, [loss] + gc.grad(loss, params))
accuracy = gc.compile([X, Y] + params, nn.accuracy(logits, Y))

weights = [init[p].copy() for p in params]
velocity = [np.zeros_like(w) for w in weights]
rng = np.random.default_rng(0)
for epoch in range(8):
    start = time.perf_counter()
    for idx in np.array_split(rng.permutation(len(x_train)), len(x_train) // 32):
        value, *grads = value_and_grad(x_train[idx], y_train[idx], *weights)
        for w, v, g in zip(weights, velocity, grads):
            v *= 0.9
            v -= 0.1 * g
            w += v
    acc = accuracy(x_test, y_test, *weights)
    print(f"epoch {epoch + 1}: test accuracy {100 * acc:.2f}%  "
          f"({time.perf_counter() - start:.2f} s)")
