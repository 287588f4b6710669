"""Layers, initialisers, losses and metrics as graphs.

Layers return their output expression together with the parameter inputs they created
and those parameters' initial values, so a model is a graph plus a dict of arrays:
nothing is hidden in objects, and the same graph can be compiled, evaluated or
explained."""

from __future__ import annotations

import itertools

import numpy as np

from . import api
from . import conv as _conv
from . import random as _random
from .graph import tensor

ACTIVATIONS = {"sigmoid": api.sigmoid, "relu": api.relu, "tanh": api.tanh,
               "softplus": api.softplus, None: None, "linear": None}


def glorot_uniform(rng, n_in, n_out, dtype="float32"):
    """Glorot/Xavier uniform: U(-a, a) with a = sqrt(6 / (n_in + n_out))."""
    a = np.sqrt(6.0 / (n_in + n_out))
    return rng.uniform(-a, a, size=(n_in, n_out)).astype(dtype)


def he_normal(rng, n_in, n_out, dtype="float32"):
    """He/Kaiming normal: N(0, 2 / n_in), for ReLU layers."""
    return (rng.standard_normal((n_in, n_out)) * np.sqrt(2.0 / n_in)).astype(dtype)


xavier_uniform = glorot_uniform
kaiming_normal = he_normal


def conv_fans(shape, groups=1):
    """(fan_in, fan_out) of a convolution weight (O, C // groups, k...): each output
    sees C // groups * prod(k) inputs, each input feeds O // groups * prod(k) outputs."""
    o, cg, *kernel = shape
    k = int(np.prod(kernel))
    return cg * k, o // groups * k


def he_normal_conv(rng, shape, groups=1, dtype="float32"):
    """He/Kaiming normal for a convolution weight: N(0, 2 / fan_in)."""
    fan_in, _ = conv_fans(shape, groups)
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)


def glorot_uniform_conv(rng, shape, groups=1, dtype="float32"):
    """Glorot/Xavier uniform for a convolution weight: U(-a, a), a = sqrt(6 / (fan_in +
    fan_out))."""
    fan_in, fan_out = conv_fans(shape, groups)
    a = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-a, a, size=shape).astype(dtype)


def dense(x, n_in, n_out, name, *, activation=None, rng=None, dtype="float32", init=None):
    """``activation(x @ W + b)``.  Returns (output, [W, b], {W: value, b: value}).

    Weights are He-initialised for ReLU, Glorot otherwise; biases start at zero."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"dense: unknown activation {activation!r}; expected one of "
                         f"{sorted(k for k in ACTIVATIONS if k)}")
    rng = rng if rng is not None else np.random.default_rng(0)
    W = tensor(f"W_{name}", (n_in, n_out), dtype)
    b = tensor(f"b_{name}", (n_out,), dtype)
    init = init or (he_normal if activation == "relu" else glorot_uniform)
    values = {W: init(rng, n_in, n_out, dtype), b: np.zeros(n_out, dtype)}
    out = x @ W + b
    fn = ACTIVATIONS[activation]
    return (fn(out) if fn else out), [W, b], values


def conv2d_layer(x, in_channels, out_channels, kernel_size, name, *, stride=1, padding=0,
                 dilation=1, groups=1, activation=None, rng=None, dtype="float32", init=None):
    """``activation(conv2d(x, W) + b)`` for x (N, C, H, W), W (out, in // groups, kh, kw),
    b (out,).  Returns (output, [W, b], {W: value, b: value}); weights He-initialised
    for ReLU (``he_normal_conv``), Glorot otherwise, biases zero."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"conv2d_layer: unknown activation {activation!r}")
    kh, kw = (kernel_size, kernel_size) if np.ndim(kernel_size) == 0 else kernel_size
    rng = rng if rng is not None else np.random.default_rng(0)
    shape = (out_channels, in_channels // groups, int(kh), int(kw))
    W = tensor(f"W_{name}", shape, dtype)
    b = tensor(f"b_{name}", (out_channels,), dtype)
    init = init or (he_normal_conv if activation == "relu" else glorot_uniform_conv)
    values = {W: init(rng, shape, groups, dtype), b: np.zeros(out_channels, dtype)}
    out = _conv.conv2d(x, W, stride=stride, padding=padding, dilation=dilation,
                       groups=groups) + api.reshape(b, (out_channels, 1, 1))
    fn = ACTIVATIONS[activation]
    return (fn(out) if fn else out), [W, b], values


def conv1d_layer(x, in_channels, out_channels, kernel_size, name, *, stride=1, padding=0,
                 dilation=1, groups=1, activation=None, rng=None, dtype="float32", init=None):
    """``activation(conv1d(x, W) + b)`` for x (N, C, L), W (out, in // groups, k); as
    ``conv2d_layer``."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"conv1d_layer: unknown activation {activation!r}")
    rng = rng if rng is not None else np.random.default_rng(0)
    shape = (out_channels, in_channels // groups, int(kernel_size))
    W = tensor(f"W_{name}", shape, dtype)
    b = tensor(f"b_{name}", (out_channels,), dtype)
    init = init or (he_normal_conv if activation == "relu" else glorot_uniform_conv)
    values = {W: init(rng, shape, groups, dtype), b: np.zeros(out_channels, dtype)}
    out = _conv.conv1d(x, W, stride=stride, padding=padding, dilation=dilation,
                       groups=groups) + api.reshape(b, (out_channels, 1))
    fn = ACTIVATIONS[activation]
    return (fn(out) if fn else out), [W, b], values


max_pool2d = _conv.max_pool2d
avg_pool2d = _conv.avg_pool2d


def flatten(x):
    """(N, ...) -> (N, prod(...)): the batch dimension kept (it may be dynamic)."""
    shape = tuple(api.shape_of(x))
    return api.reshape(x, (None if shape[0] is None else shape[0], int(np.prod(shape[1:]))))


def cnn(x, *, channels=(32, 64), kernel_size=5, hidden=128, classes=10, image=(28, 28),
        dtype="float32", seed=0, dropout_rate=0.0, dropout_seed=None):
    """A LeNet-style network for (N, H * W) images (flattened, as the MLP's input):
    per entry of `channels` a "same" kh x kw convolution, ReLU and 2x2 max-pooling; then
    a ReLU dense layer of `hidden` units and the logits.  Returns (logits, params, init
    values).  With `dropout_seed`, dropout at `dropout_rate` before each dense layer;
    ``cnn_forward(x, params, ...)`` is the same model without it."""
    rng = np.random.default_rng(seed)
    params, values = [], {}
    c_in, (h, w) = 1, image
    for i, c_out in enumerate(channels):
        shape = (c_out, c_in, kernel_size, kernel_size)
        W = tensor(f"K{i + 1}", shape, dtype)
        b = tensor(f"c{i + 1}", (c_out,), dtype)
        values[W], values[b] = he_normal_conv(rng, shape, 1, dtype), np.zeros(c_out, dtype)
        params += [W, b]
        c_in, h, w = c_out, h // 2, w // 2
    for i, (n_in, n_out) in enumerate([(c_in * h * w, hidden), (hidden, classes)]):
        W = tensor(f"W{i + 1}", (n_in, n_out), dtype)
        b = tensor(f"b{i + 1}", (n_out,), dtype)
        init = he_normal if i == 0 else glorot_uniform
        values[W], values[b] = init(rng, n_in, n_out, dtype), np.zeros(n_out, dtype)
        params += [W, b]
    logits = cnn_forward(x, params, image=image, dropout_rate=dropout_rate, seed=dropout_seed)
    return logits, params, values


def cnn_forward(x, params, *, image=(28, 28), dropout_rate=0.0, seed=None):
    """The logits of ``cnn``'s network with parameters ``[K1, c1, K2, c2, ..., W1, b1,
    W2, b2]`` (graph inputs or tape tensors)."""
    convs, (W1, b1, W2, b2) = params[:-4], params[-4:]
    shape = tuple(api.shape_of(x))
    h = api.reshape(x, (None if shape[0] is None else shape[0], 1) + tuple(image))
    for K, c in zip(convs[0::2], convs[1::2]):
        c_out = api.shape_of(c)[0]
        h = api.relu(_conv.conv2d(h, K, padding="same") + api.reshape(c, (c_out, 1, 1)))
        h = _conv.max_pool2d(h, 2)
    h = dropout(flatten(h), dropout_rate, seed, key=1)
    h = api.relu(h @ W1 + b1)
    h = dropout(h, dropout_rate, seed, key=2)
    return h @ W2 + b2


def dropout(x, rate, seed, key=None):
    """Inverted dropout: each element of x is zeroed with probability `rate` and the
    kept ones are scaled by 1 / (1 - rate), so the expected value is x.  The mask is
    ``gc.random.uniform_like(seed, x, dtype="float32", key=key) >= rate`` (counter-based:
    the same seed gives the same mask on every backend).  `key` defaults to a hash of
    x's graph (``gc.random.structure_key``), so two dropout layers differ; pass it
    explicitly to make a mask independent of the graph around it.  With `seed` None or
    `rate` 0, x itself (the evaluation graph of a model trained with dropout)."""
    rate = float(rate)
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout: rate must be in [0, 1), got {rate}")
    if seed is None or rate == 0.0:
        return x
    key = _random.structure_key(x) if key is None else key
    keep = _random.uniform_like(seed, x, dtype="float32", key=key) >= rate
    return api.where(keep, x * (1.0 / (1.0 - rate)), 0.0)


def mlp_forward(x, params, activation="sigmoid", *, dropout_rate=0.0, seed=None):
    """The logits of an MLP whose parameters are ``[W1, b1, W2, b2, ...]``: graph inputs,
    or tape tensors (the same code runs eagerly on the tape).  With a `seed` (e.g.
    ``gc.random.seed()``) and `dropout_rate`, dropout follows every hidden activation
    (layer i's mask keyed by i); without, the same graph without dropout."""
    fn = ACTIVATIONS[activation]
    h = x
    pairs = list(zip(params[0::2], params[1::2]))
    for i, (W, b) in enumerate(pairs):
        h = h @ W + b
        if i < len(pairs) - 1 and fn is not None:
            h = fn(h)
        if i < len(pairs) - 1:
            h = dropout(h, dropout_rate, seed, key=i + 1)
    return h


def mlp(x, sizes, activation="sigmoid", *, dtype="float32", seed=0, dropout_rate=0.0,
        dropout_seed=None):
    """A multilayer perceptron with layer sizes e.g. (784, 128, 10): hidden layers use
    `activation`, the last is linear (logits).  Returns (logits, params, init values).
    With `dropout_seed` (an int64 scalar input: ``gc.random.seed()``), dropout at
    `dropout_rate` after each hidden layer; ``mlp_forward(x, params, activation)`` is
    then the model without dropout, for evaluation."""
    sizes = list(sizes)
    if len(sizes) < 2:
        raise ValueError(f"mlp: need at least an input and an output size, got {sizes}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"mlp: unknown activation {activation!r}")
    rng = np.random.default_rng(seed)
    init = he_normal if activation == "relu" else glorot_uniform
    params, values = [], {}
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        W = tensor(f"W{i + 1}", (n_in, n_out), dtype)
        b = tensor(f"b{i + 1}", (n_out,), dtype)
        values[W], values[b] = init(rng, n_in, n_out, dtype), np.zeros(n_out, dtype)
        params += [W, b]
    logits = mlp_forward(x, params, activation, dropout_rate=dropout_rate, seed=dropout_seed)
    return logits, params, values


def softmax_cross_entropy(logits, labels):
    """Mean softmax cross-entropy over the rows of a batch; `labels` are integer class
    ids (N,) (e.g. an int64 input ``gc.tensor("labels", (None,), "int64")``) or one-hot
    (or soft) float rows of the logits' shape."""
    return api.mean(api.cross_entropy(logits, labels))


def mse(pred, target):
    return api.mse(pred, target)


def accuracy(logits, labels):
    """Fraction of rows whose true class has the largest logit.  (A row where the true
    class ties with another for the maximum counts as correct.)  `labels`: integer
    class ids (N,), 0 <= id < K (IndexError otherwise, as ``cross_entropy``), or
    one-hot float rows of the logits' (N, K) shape."""
    top = api.where(logits >= api.max(logits, axis=-1, keepdims=True), 1.0, 0.0)
    if np.dtype(getattr(labels, "dtype", np.asarray(labels).dtype)).kind in "iu":
        k = api.shape_of(logits)[-1]
        if k is None:
            raise ValueError("accuracy: with integer labels the number of classes (the "
                             "logits' last axis) must be static")
        ids, dtype = api._as_index(labels, logits), getattr(logits, "dtype", np.float64)
        if isinstance(ids, np.ndarray):             # on the tape: the labels are data
            if ids.size and (ids.min() < 0 or ids.max() >= k):
                bad = ids[(ids < 0) | (ids >= k)].flat[0]
                raise IndexError(f"accuracy: label {bad} is out of range for {k} classes")
            labels = np.eye(k, dtype=dtype)[ids]
        else:
            ids = api.apply("check_index", ids, api.const(np.asarray(k, np.int64), np.int64))
            labels = api.one_hot(ids, k, dtype)
    return api.mean(api.sum(labels * top, axis=-1))


__all__ = [
    "accuracy",
    "avg_pool2d",
    "cnn",
    "cnn_forward",
    "conv1d_layer",
    "conv2d_layer",
    "conv_fans",
    "dense",
    "dropout",
    "flatten",
    "glorot_uniform",
    "glorot_uniform_conv",
    "he_normal",
    "he_normal_conv",
    "kaiming_normal",
    "max_pool2d",
    "mlp",
    "mlp_forward",
    "mse",
    "softmax_cross_entropy",
    "xavier_uniform",
]
