"""Optimizers against hand-computed NumPy steps (PyTorch's update rules), schedules and
gradient clipping."""


import numpy as np
import pytest

import graphc as gc
from graphc import optim

TARGET = np.array([1.0, -2.0, 0.5])
START = np.array([0.3, 0.1, -0.7])


def run(optimizer, steps=3, clip_norm=None):
    """Minimise 0.5 * |w - TARGET|^2 (gradient w - TARGET) for a few steps."""
    w = gc.vector("w", 3)
    loss = 0.5 * gc.sum(gc.square(w - TARGET))
    step = optim.compile_step(loss, [w], [], optimizer, init={w: START}, clip_norm=clip_norm)
    trajectory = []
    for _ in range(steps):
        step()
        trajectory.append(step.params["w"].copy())
    return trajectory, step


def hand_sgd(lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0, steps=3):
    w, buf, out = START.copy(), None, []
    for _ in range(steps):
        g = (w - TARGET) + weight_decay * w
        if momentum:
            buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        w = w - lr * g
        out.append(w)
    return out


def hand_adam(lr, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0, decoupled=False, steps=3):
    w, m, v, out = START.copy(), np.zeros(3), np.zeros(3), []
    for t in range(1, steps + 1):
        g = w - TARGET
        if weight_decay and not decoupled:
            g = g + weight_decay * w
        if weight_decay and decoupled:
            w = w * (1 - lr * weight_decay)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w = w - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
        out.append(w)
    return out


def hand_rmsprop(lr, alpha=0.99, eps=1e-8, momentum=0.0, centered=False, steps=3):
    w, sq, gavg, buf, out = START.copy(), np.zeros(3), np.zeros(3), np.zeros(3), []
    for _ in range(steps):
        g = w - TARGET
        sq = alpha * sq + (1 - alpha) * g * g
        if centered:
            gavg = alpha * gavg + (1 - alpha) * g
            avg = np.sqrt(sq - gavg ** 2) + eps
        else:
            avg = np.sqrt(sq) + eps
        if momentum:
            buf = momentum * buf + g / avg
            w = w - lr * buf
        else:
            w = w - lr * g / avg
        out.append(w)
    return out


@pytest.mark.parametrize("optimizer, expected", [
    (optim.SGD(0.1), hand_sgd(0.1)),
    (optim.SGD(0.1, momentum=0.9), hand_sgd(0.1, momentum=0.9)),
    (optim.SGD(0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
     hand_sgd(0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    (optim.SGD(0.1, momentum=0.5, dampening=0.3), hand_sgd(0.1, momentum=0.5, dampening=0.3)),
    (optim.Adam(0.1), hand_adam(0.1)),
    (optim.Adam(0.05, betas=(0.8, 0.9), weight_decay=0.1),
     hand_adam(0.05, 0.8, 0.9, weight_decay=0.1)),
    (optim.AdamW(0.1), hand_adam(0.1, weight_decay=1e-2, decoupled=True)),
    (optim.RMSProp(0.01), hand_rmsprop(0.01)),
    (optim.RMSProp(0.01, momentum=0.9, centered=True),
     hand_rmsprop(0.01, momentum=0.9, centered=True)),
], ids=["sgd", "momentum", "nesterov+wd", "dampening", "adam", "adam-l2", "adamw", "rmsprop",
        "rmsprop-centered-momentum"])
def test_optimizer_steps_match_hand_computation(optimizer, expected):
    got, step = run(optimizer)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-14)
    assert step.step == 3


def test_adam_first_step_is_lr_times_sign():
    """Bias correction makes Adam's first step lr * g / (|g| + eps) ~ lr * sign(g)."""
    (w1, *_), _ = run(optim.Adam(0.1), steps=1)
    np.testing.assert_allclose(w1, START - 0.1 * np.sign(START - TARGET), rtol=1e-6, atol=1e-8)


def test_clipping_by_global_norm():
    g0 = START - TARGET
    norm = np.linalg.norm(g0)
    (w1, *_), _ = run(optim.SGD(1.0), steps=1, clip_norm=0.5)
    np.testing.assert_allclose(w1, START - g0 * 0.5 / (norm + 1e-6), rtol=1e-12)
    (w1, *_), _ = run(optim.SGD(1.0), steps=1, clip_norm=100.0)   # below: untouched
    np.testing.assert_allclose(w1, START - g0, rtol=1e-12)


def test_schedules():
    assert optim.StepLR(10, 0.5)(1.0, 25) == 0.25
    cos = optim.CosineAnnealingLR(100, eta_min=0.1)
    assert cos(1.0, 0) == 1.0 and cos(1.0, 100) == pytest.approx(0.1)
    assert cos(1.0, 50) == pytest.approx(0.55)
    warm = optim.LinearWarmup(4, after=optim.StepLR(2, 0.1))
    assert [warm(1.0, s) for s in range(7)] == pytest.approx([0.25, 0.5, 0.75, 1, 1, 1, 0.1])


def test_schedule_drives_the_compiled_learning_rate():
    w = gc.vector("w", 3)
    loss = 0.5 * gc.sum(gc.square(w - TARGET))
    step = optim.compile_step(loss, [w], [], optim.SGD(0.1), init={w: START})
    step.schedule = optim.StepLR(1, 0.5)
    step()
    step()
    expected = START - 0.1 * (START - TARGET)
    expected = expected - 0.05 * (expected - TARGET)
    np.testing.assert_allclose(step.params["w"], expected, rtol=1e-12)


def test_bad_optimizer_arguments():
    with pytest.raises(ValueError, match="lr"):
        optim.Adam(lr=0)
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD(0.1, nesterov=True)
    w = gc.vector("w", 3)
    with pytest.raises(ValueError, match="initial value"):
        optim.compile_step(gc.sum(w), [w], [], optim.SGD(0.1), init={})
