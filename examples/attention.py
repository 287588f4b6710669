"""Batched self-attention with layer norm on (B, T, d) tensors: ``@`` on 3-D operands
(matmul broadcasting over the batch), ``swapaxes``, ``softmax``, ``mean``/``var``.

One pre-norm attention block, ``Y = X + softmax(Q Kᵀ / √d) V Wo`` with
``Q, K, V = LN(X) Wq, LN(X) Wk, LN(X) Wv``, is checked three ways: its forward value
against the same block written in NumPy, its gradient against central differences,
and by training it (Adam, ``train.fit``) to imitate a teacher block with other random
weights."""

import numpy as np

import graphc as gc
from graphc import optim, train

T, D = 8, 16
rng = np.random.default_rng(0)

X = gc.tensor("X", (None, T, D))                     # a batch of B sequences of T tokens
target = gc.tensor("target", (None, T, D))
gamma, beta = gc.tensor("gamma", (D,)), gc.tensor("beta", (D,))
Wq, Wk, Wv, Wo = (gc.tensor(name, (D, D)) for name in ("Wq", "Wk", "Wv", "Wo"))
params = [gamma, beta, Wq, Wk, Wv, Wo]


def layer_norm(x, eps=1e-5):
    mu = gc.mean(x, axis=-1, keepdims=True)
    return (x - mu) / gc.sqrt(gc.var(x, axis=-1, keepdims=True) + eps) * gamma + beta


H = layer_norm(X)
Q, K, V = H @ Wq, H @ Wk, H @ Wv                        # (B, T, d) @ (d, d)
scores = Q @ gc.swapaxes(K, -1, -2) / np.sqrt(D)        # (B, T, d) @ (B, d, T) -> (B, T, T)
Y = X + (gc.softmax(scores, axis=-1) @ V) @ Wo
loss = gc.mean(gc.square(Y - target))


def numpy_block(x, g, b, wq, wk, wv, wo, eps=1e-5):
    h = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps) * g + b
    q, k, v = h @ wq, h @ wk, h @ wv
    s = q @ k.transpose(0, 2, 1) / np.sqrt(D)
    a = np.exp(s - s.max(-1, keepdims=True))
    return x + (a / a.sum(-1, keepdims=True)) @ v @ wo


def init(seed, scale=0.3):
    r = np.random.default_rng(seed)
    return {gamma: 1 + 0.1 * r.normal(size=D), beta: 0.1 * r.normal(size=D),
            **{w: scale * r.normal(size=(D, D)) for w in (Wq, Wk, Wv, Wo)}}


teacher = init(1, scale=0.5)
x_all = rng.normal(size=(320, T, D))
y_all = numpy_block(x_all, *teacher.values())

# 1. the forward value, compiled, against NumPy
block = gc.compile([X, target] + params, [Y, loss])
got, _ = block(x_all, y_all, *teacher.values())
error = float(np.max(np.abs(got - y_all)))
print(f"forward vs NumPy: max abs difference {error:.1e} "
      f"({'ok' if error < 1e-12 else 'MISMATCH'})")

# 2. the gradient of every parameter against central differences (a batch of 2), with
# a step of 1e-4: the loss's rounding noise (a mean of 256 squared errors of size ~4)
# would swamp check_grad's default step of 6e-6 for the smallest entries.
student = init(2)
point = {X: x_all[:2], target: y_all[:2], **student}
check = gc.check_grad(loss, params, point, eps=1e-4)
print(check)

# 3. training the student to imitate the teacher
step = optim.compile_step(loss, params, [X, target], optim.Adam(0.01),
                          init={p: student[p].copy() for p in params})
history = train.fit(step, x_all[:256], y_all[:256], epochs=40, batch_size=32, seed=0,
                    progress=False)
held_out = float(block(x_all[256:], y_all[256:], *[step.params[p.name] for p in params])[1])
start = float(block(x_all[256:], y_all[256:], *student.values())[1])
print(f"training: loss {history['loss'][0]:.4f} (epoch 1) -> {history['loss'][-1]:.4f} "
      f"(epoch {len(history)}); held-out loss {start:.4f} -> {held_out:.4f}")
print(f"checks: forward {'ok' if error < 1e-12 else 'MISMATCH'}, gradient "
      f"{'ok' if check.ok else 'MISMATCH'}, held-out loss below 10% of the untrained "
      f"student's: {held_out < 0.1 * start}")
