"""A text classifier on integer token ids: an embedding bag (the mean of the rows of an
embedding table picked by each document's tokens) and a linear layer, trained with
Adam on integer class labels — no one-hot anywhere in user code.

The data are synthetic: documents of class c use tokens from a range of the vocabulary
that belongs to c, mixed with common tokens, so the classes are learnable but not by
one token alone."""

import numpy as np

import graphc as gc
from graphc import optim, train

VOCAB, DIM, CLASSES, LENGTH = 200, 16, 4, 12
rng = np.random.default_rng(0)


def documents(n):
    labels = rng.integers(0, CLASSES, n)
    own = rng.integers(0, VOCAB // 2 // CLASSES, (n, LENGTH // 2)) + labels[:, None] * (VOCAB // 2 // CLASSES)
    common = rng.integers(VOCAB // 2, VOCAB, (n, LENGTH - LENGTH // 2))
    return np.concatenate([own, common], axis=1).astype(np.int64), labels.astype(np.int64)


tokens = gc.tensor("tokens", (None, LENGTH), "int64")
labels = gc.tensor("labels", (None,), "int64")
E = gc.tensor("E", (VOCAB, DIM))
W, b = gc.tensor("W", (DIM, CLASSES)), gc.tensor("b", (CLASSES,))
bag = gc.mean(E[tokens], axis=1)                        # (N, LENGTH, DIM) -> (N, DIM)
logits = bag @ W + b
loss = gc.mean(gc.cross_entropy(logits, labels))        # integer class ids
accuracy = gc.mean(gc.equal(gc.argmax(logits, axis=1), labels))

init = {E: rng.normal(0, 0.1, (VOCAB, DIM)), W: rng.normal(0, 0.1, (DIM, CLASSES)),
        b: np.zeros(CLASSES)}
step = optim.compile_step(loss, [E, W, b], [tokens, labels], optim.Adam(0.05), init=init,
                          extra_outputs={"accuracy": accuracy})
x_train, y_train = documents(2000)
x_test, y_test = documents(500)
history = train.fit(step, x_train, y_train, epochs=5, batch_size=64, progress=False)
for record in history.epochs:
    print(f"epoch {record['epoch']}: loss {record['loss']:.3f}  train accuracy {record['accuracy']:.3f}")
params = {E: step.params["E"], W: step.params["W"], b: step.params["b"]}
test_accuracy = gc.evaluate(accuracy, {tokens: x_test, labels: y_test, **params})
print(f"test accuracy {test_accuracy:.3f}")
