"""Optimizers whose update rules are graphs, and a whole training step in one kernel.

An optimizer here does not loop over arrays in Python: given the parameters and their
gradient graphs, it builds the graphs of the new parameters and new optimizer state.
``compile_step`` compiles forward, backward and update into one Function that writes
the new values in place (``gc.compile(..., updates=...)``), so a training step costs
one kernel call.  Semantics and defaults follow PyTorch's ``torch.optim``.

The learning rate and the step count are inputs of shape (1,), so schedules change the
learning rate without recompiling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import api
from .autodiff import grad
from .function import compile as compile_function
from .graph import tensor


class Optimizer:
    """Base class: `slots` names the per-parameter state arrays (a momentum buffer,
    Adam's m and v, ...); `update` builds the graphs."""

    slots: tuple = ()

    def __init__(self, lr):
        if not lr > 0:
            raise ValueError(f"{type(self).__name__}: lr must be positive, got {lr}")
        self.lr = float(lr)

    def update(self, p, g, state, lr, t):
        """(new parameter, {slot: new state}) as graphs.  `t` is the number of steps
        taken before this one; `lr` the learning rate (both shape (1,))."""
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, dampening, Nesterov momentum and
    L2 weight decay, exactly as ``torch.optim.SGD`` (the first step sets the momentum
    buffer to the gradient)."""

    def __init__(self, lr=1e-2, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(lr)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum needs momentum > 0 and dampening = 0")
        self.momentum, self.dampening = float(momentum), float(dampening)
        self.nesterov, self.weight_decay = bool(nesterov), float(weight_decay)
        self.slots = ("momentum_buffer",) if momentum else ()

    def update(self, p, g, state, lr, t):
        if self.weight_decay:
            g = g + self.weight_decay * p
        new_state = {}
        if self.momentum:
            buf = state["momentum_buffer"]
            buf = api.where(t > 0, self.momentum * buf + (1.0 - self.dampening) * g, g)
            new_state["momentum_buffer"] = buf
            g = g + self.momentum * buf if self.nesterov else buf
        return p - lr * g, new_state


class Adam(Optimizer):
    """Adam with bias correction; `weight_decay` is L2 added to the gradient
    (``torch.optim.Adam``).  See AdamW for decoupled weight decay."""

    slots = ("exp_avg", "exp_avg_sq")
    decoupled = False

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(lr)
        self.beta1, self.beta2 = map(float, betas)
        self.eps, self.weight_decay = float(eps), float(weight_decay)

    def update(self, p, g, state, lr, t):
        if self.weight_decay and not self.decoupled:
            g = g + self.weight_decay * p
        if self.weight_decay and self.decoupled:
            p = p * (1.0 - lr * self.weight_decay)
        m = self.beta1 * state["exp_avg"] + (1.0 - self.beta1) * g
        v = self.beta2 * state["exp_avg_sq"] + (1.0 - self.beta2) * api.square(g)
        step = t + 1.0
        m_hat = m / (1.0 - api.pow(self.beta1, step))
        v_hat = v / (1.0 - api.pow(self.beta2, step))
        return p - lr * m_hat / (api.sqrt(v_hat) + self.eps), {"exp_avg": m, "exp_avg_sq": v}


class AdamW(Adam):
    """Adam with decoupled weight decay (``torch.optim.AdamW``, default 1e-2)."""

    decoupled = True

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(lr, betas, eps, weight_decay)


class RMSProp(Optimizer):
    """RMSProp as ``torch.optim.RMSprop`` (alpha, eps, weight decay, momentum, centered)."""

    def __init__(self, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False):
        super().__init__(lr)
        self.alpha, self.eps, self.weight_decay = float(alpha), float(eps), float(weight_decay)
        self.momentum, self.centered = float(momentum), bool(centered)
        self.slots = ("square_avg",) + (("grad_avg",) if centered else ()) + (
            ("momentum_buffer",) if momentum else ())

    def update(self, p, g, state, lr, t):
        if self.weight_decay:
            g = g + self.weight_decay * p
        sq = self.alpha * state["square_avg"] + (1.0 - self.alpha) * api.square(g)
        new_state = {"square_avg": sq}
        if self.centered:
            gavg = self.alpha * state["grad_avg"] + (1.0 - self.alpha) * g
            new_state["grad_avg"] = gavg
            avg = api.sqrt(sq - api.square(gavg)) + self.eps
        else:
            avg = api.sqrt(sq) + self.eps
        if self.momentum:
            buf = self.momentum * state["momentum_buffer"] + g / avg
            new_state["momentum_buffer"] = buf
            return p - lr * buf, new_state
        return p - lr * g / avg, new_state


OPTIMIZERS = {"sgd": SGD, "momentum": lambda lr: SGD(lr, momentum=0.9), "adam": Adam,
              "adamw": AdamW, "rmsprop": RMSProp}


def clip_by_global_norm(grads, max_norm):
    """Gradients scaled so that their joint L2 norm is at most `max_norm` (as
    ``torch.nn.utils.clip_grad_norm_``), as graphs."""
    total = None
    for g in grads:
        s = api.sum(api.square(g))
        total = s if total is None else total + s
    norm = api.sqrt(total)
    scale = api.minimum(1.0, max_norm / (norm + 1e-6))
    return [g * api.astype(scale, g.dtype) for g in grads], norm


# ---------------------------------------------------------------------------------
# Learning-rate schedules: plain objects giving the learning rate for a step number.
# ---------------------------------------------------------------------------------

@dataclass
class StepLR:
    """lr * gamma ** (step // step_size)."""
    step_size: int
    gamma: float = 0.1

    def __call__(self, base_lr, step):
        return base_lr * self.gamma ** (step // self.step_size)


@dataclass
class CosineAnnealingLR:
    """Cosine from lr down to eta_min over T_max steps (then it stays at eta_min)."""
    T_max: int
    eta_min: float = 0.0

    def __call__(self, base_lr, step):
        step = min(step, self.T_max)
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * step / self.T_max)) / 2


@dataclass
class LinearWarmup:
    """Linear warm-up over `warmup_steps`, then `after` (another schedule) or constant."""
    warmup_steps: int
    after: object = None

    def __call__(self, base_lr, step):
        if step < self.warmup_steps:
            return base_lr * (step + 1) / self.warmup_steps
        return self.after(base_lr, step - self.warmup_steps) if self.after else base_lr


# ---------------------------------------------------------------------------------
# A compiled training step
# ---------------------------------------------------------------------------------

@dataclass
class TrainStep:
    """Forward, backward and update in one kernel call.  Holds the parameter and state
    arrays (updated in place); call it with one batch of the data inputs; returns the
    loss (and any extra outputs) computed with the parameters before the update."""

    function: object
    data_inputs: list
    params: dict                    # name -> array, updated in place
    state: dict                     # "param/slot" -> array
    lr_array: np.ndarray
    step_array: np.ndarray
    base_lr: float
    schedule: object = None
    extra_names: tuple = ()         # names of the extra outputs, in order
    seed_inputs: tuple = ()         # int64 scalar inputs keying gc.random (dropout)
    seed: int = 0                   # the base of the seeds fed when a call gives none
    _args: list = field(default_factory=list)

    @property
    def step(self):
        return int(self.step_array[0])

    @property
    def lr(self):
        return float(self.lr_array[0])

    def __call__(self, *batch, seed=None):
        """One step on `batch`.  A step with seed inputs gets ``step_seed(seed, k)`` for
        its k-th, where `seed` defaults to ``step_seed(self.seed, self.step)``: fresh
        random numbers every step, the same in a run resumed from a checkpoint."""
        if len(batch) != len(self.data_inputs):
            raise TypeError(f"the training step takes {len(self.data_inputs)} data arrays "
                            f"({', '.join(x.name for x in self.data_inputs)}), got {len(batch)}")
        if self.schedule is not None:
            self.lr_array[0] = self.schedule(self.base_lr, self.step)
        seeds = ()
        if self.seed_inputs:
            base = step_seed(self.seed, self.step) if seed is None else int(seed)
            seeds = [base] + [step_seed(base, k) for k in range(1, len(self.seed_inputs))]
        out = self.function(*batch, *seeds, *self._args)
        return out if self.extra_names else out[0]


def step_seed(base, step):
    """A 63-bit seed mixed from two integers (SplitMix64's finaliser): the seed of
    training step `step` of a run with seed `base`."""
    mask = (1 << 64) - 1
    z = (int(base) * 0x9E3779B97F4A7C15 + int(step) + 0x632BE59BD9B4E019) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return (z ^ (z >> 31)) >> 1


def _seed_inputs(inputs, outputs, params):
    """(data inputs, seed inputs): int64 scalar inputs are seeds (listed in `inputs` or
    only met in the graph), which the step feeds itself; the rest is data."""
    from .graph import inputs_of
    is_seed = lambda x: x.dtype == np.int64 and x.shape == ()    # noqa: E731
    listed = set(inputs) | set(params)
    seeds = [x for x in inputs if is_seed(x)]
    seeds += [x for x in inputs_of(outputs) if is_seed(x) and x not in listed]
    return [x for x in inputs if not is_seed(x)], seeds


def compile_step(loss, params, inputs, optimizer, *, init, clip_norm=None, extra_outputs=(),
                 **compile_options):
    """Compile one training step of `loss` over `params` (graph inputs) with `optimizer`.

    `inputs` are the data inputs (e.g. ``[X, Y]``), `init` maps each parameter to its
    initial value (copied).  The int64 scalar inputs of the graph (``gc.random.seed()``,
    listed in `inputs` or not) are seeds: the step feeds them a fresh value per call.  With `clip_norm`, gradients are clipped by global norm
    first.  `extra_outputs` are more graphs to return with the loss (computed with the
    parameters before the update): a list (``train.fit`` records their epoch means as
    ``output1``, ``output2`` ...) or a dict ``{name: graph}`` (recorded by name)."""
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"compile_step: optimizer must be a graphc.optim.Optimizer, "
                        f"got {type(optimizer).__name__}")
    params = list(params)
    if isinstance(extra_outputs, dict):
        extra_names, extra_outputs = tuple(extra_outputs), list(extra_outputs.values())
    else:
        extra_outputs = list(extra_outputs)
        extra_names = tuple(f"output{i + 1}" for i in range(len(extra_outputs)))
    grads = grad(loss, params)
    if clip_norm is not None:
        grads, _ = clip_by_global_norm(grads, float(clip_norm))
    lr, t = tensor("lr", (1,)), tensor("step", (1,))
    updates, state_inputs, arrays, state = {}, [], {}, {}
    for p, g in zip(params, grads):
        slots = {s: tensor(f"{p.name}__{s}", p.shape, p.dtype) for s in optimizer.slots}
        new_p, new_state = optimizer.update(p, g, slots, lr, t)
        updates[p] = new_p
        for s, x in slots.items():
            updates[x] = new_state[s]
            state_inputs.append(x)
            state[f"{p.name}/{s}"] = np.zeros(p.shape, p.dtype)
        if p not in init:
            raise ValueError(f"compile_step: no initial value for parameter {p.name!r}")
        value = np.array(init[p], dtype=p.dtype)
        if value.shape != p.shape:
            raise ValueError(f"compile_step: initial value of {p.name!r} has shape "
                             f"{value.shape}, expected {p.shape}")
        arrays[p.name] = value
    updates[t] = t + 1.0
    data_inputs, seed_inputs = _seed_inputs(list(inputs), [loss, *extra_outputs], params)
    fn = compile_function(data_inputs + seed_inputs + params + state_inputs + [lr, t],
                          [loss, *extra_outputs], updates=updates, **compile_options)
    lr_array, step_array = np.full(1, optimizer.lr), np.zeros(1)
    step = TrainStep(fn, data_inputs, arrays, state, lr_array, step_array, optimizer.lr,
                     extra_names=extra_names, seed_inputs=tuple(seed_inputs))
    step._args = [arrays[p.name] for p in params] + list(state.values()) + [lr_array, step_array]
    return step


__all__ = [
    "OPTIMIZERS",
    "SGD",
    "Adam",
    "AdamW",
    "CosineAnnealingLR",
    "LinearWarmup",
    "RMSProp",
    "StepLR",
    "TrainStep",
    "clip_by_global_norm",
    "compile_step",
    "step_seed",
]
