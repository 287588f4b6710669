"""Data-parallel training on a Dask cluster, for ``train.fit(step, X, Y, client=...)``.

Two ways to use several workers:

* **synchronous** (``data_parallel="sync"``): every mini-batch is split across the
  workers, each computes the loss and gradients of its part, the client averages them
  (weighted by rows) and applies one optimizer update.  The trajectory is the local
  one (up to rounding); each step costs one round trip to the cluster.  This needs a
  step that can apply a gradient it did not compute: ``compile_step`` below.
* **local SGD** (``data_parallel="local"``): each worker takes `sync_every` ordinary
  steps on its own batches, then the client averages parameters and optimizer state
  (weighted by examples).  One round trip per `sync_every` steps per worker; any
  ``optim.compile_step`` TrainStep works.

Both keep a copy of the training arrays on every worker (sent once per ``fit``), so a
step sends only row indices and parameters; ``fit`` takes in-memory arrays, so they fit
on one machine by construction.  Data too large for that belong in Dask arrays and
``value_and_grad``/``minimize``."""

from __future__ import annotations

import copy
import functools
import operator

import numpy as np

from .. import api, optim
from ..autodiff import grad
from ..function import compile as compile_function
from ..graph import tensor
from . import reduce as reduction
from .cluster import worker_addresses

MODES = ("sync", "local")


class DataParallelStep:
    """A training step in two kernels — ``gradient`` (loss, extra outputs, gradients of
    one batch) and ``apply`` (one optimizer update from given gradients, a TrainStep
    that holds the parameters and state) — so that gradients of parts of a batch,
    computed anywhere, can be averaged before the update.  Calling it on a batch runs
    both, like an ``optim.TrainStep``; ``fit`` uses it the same way."""

    def __init__(self, gradient, apply, param_names, extra_names, reduce, seed_inputs=()):
        self.gradient, self.apply = gradient, apply
        self.param_names, self.extra_names, self.reduce = param_names, extra_names, reduce
        self.seed_inputs, self.seed = tuple(seed_inputs), 0
        n_data = len(gradient.inputs) - len(param_names) - len(self.seed_inputs)
        self.data_inputs = gradient.inputs[:n_data]

    params = property(lambda self: self.apply.params)
    state = property(lambda self: self.apply.state)
    lr_array = property(lambda self: self.apply.lr_array)
    step_array = property(lambda self: self.apply.step_array)
    base_lr = property(lambda self: self.apply.base_lr)
    lr = property(lambda self: self.apply.lr)
    step = property(lambda self: self.apply.step)

    @property
    def schedule(self):
        return self.apply.schedule

    @schedule.setter
    def schedule(self, value):
        self.apply.schedule = value

    def parameters(self):
        """The parameter arrays in the gradient Function's order."""
        return [self.apply.params[name] for name in self.param_names]

    def seeds(self, seed=None, shard=0):
        """The values of the seed inputs (dropout) for this step, as a TrainStep feeds
        them; each shard of a split batch gets its own (shard 0 the unsplit one's)."""
        if not self.seed_inputs:
            return []
        base = optim.step_seed(self.seed, self.step) if seed is None else int(seed)
        base = optim.step_seed(base, 2 ** 32 + shard) if shard else base
        return [base] + [optim.step_seed(base, k) for k in range(1, len(self.seed_inputs))]

    def __call__(self, *batch, seed=None):
        return self.update([shard_gradient(self.gradient, self.parameters(), self.reduce,
                                           *batch, seeds=self.seeds(seed))])

    def update(self, parts):
        """Combine per-shard partial sums (``shard_gradient``), apply the gradient, and
        return the batch's loss (and extra outputs) as a TrainStep would."""
        dtypes = [o.dtype for o in self.gradient.outputs]
        outputs = reduction.finish(reduction.add(*parts), self.reduce, dtypes)
        n = 1 + len(self.extra_names)
        self.apply(*outputs[n:])
        return tuple(outputs[:n]) if self.extra_names else outputs[0]


def compile_step(loss, params, inputs, optimizer, *, init, clip_norm=None, extra_outputs=(),
                 reduce="mean", **compile_options):
    """``optim.compile_step``'s arguments, for a DataParallelStep.

    The update kernel is ``optim.compile_step`` itself, run on the linear loss
    Σ sum(p · g) whose gradient with respect to each parameter p is exactly the input
    g: the optimizer, clipping and schedules are the ones local training uses.
    `reduce` says how the loss combines over rows (``"mean"`` as for
    ``nn.softmax_cross_entropy``, or ``"sum"``)."""
    reduction.check_reduce(reduce)
    params = list(params)
    if isinstance(extra_outputs, dict):
        extra_names, extras = tuple(extra_outputs), list(extra_outputs.values())
    else:
        extras = list(extra_outputs)
        extra_names = tuple(f"output{i + 1}" for i in range(len(extras)))
    data_inputs, seed_inputs = optim._seed_inputs(list(inputs), [loss, *extras], params)
    gradient = compile_function(data_inputs + seed_inputs + params,
                                [loss, *extras, *grad(loss, params)], **compile_options)
    grads = [tensor(f"{p.name}__grad", p.shape, p.dtype) for p in params]
    linear = functools.reduce(operator.add, [api.sum(p * g) for p, g in zip(params, grads)])
    apply = optim.compile_step(linear, params, grads, optimizer, init=init,
                               clip_norm=clip_norm, **compile_options)
    return DataParallelStep(gradient, apply, [p.name for p in params], extra_names, reduce,
                            seed_inputs)


def shard_gradient(gradient, params, reduce, *batch, seeds=()):
    """One shard's partial sums of loss, extra outputs and gradients."""
    return reduction.partial(len(batch[0]), gradient(*batch, *seeds, *params), reduce)


class Runner:
    """Runs ``fit``'s mini-batches on a Dask client, in place of local steps, keeping
    the client's `step` arrays current (checkpoints and the caller see them)."""

    def __init__(self, client, step, x, y, mode="sync", sync_every=8):
        if mode not in MODES:
            raise ValueError(f"fit: data_parallel must be one of {MODES}, got {mode!r}")
        if mode == "sync" and not isinstance(step, DataParallelStep):
            raise TypeError("fit: synchronous data-parallel training averages gradients "
                            "before one update, so it needs a step from "
                            "graphc.dask.compile_step (an optim.compile_step TrainStep "
                            "fuses gradient and update); data_parallel='local' takes either")
        if sync_every < 1:
            raise ValueError(f"fit: sync_every must be positive, got {sync_every}")
        self.client, self.step, self.mode, self.sync_every = client, step, mode, sync_every
        self.workers = worker_addresses(client)
        self.data = client.scatter([x, y], broadcast=True, hash=False)
        # sync: the gradient kernel; local: the whole step, copied by each task
        shipped = step.gradient if mode == "sync" else step
        self.shipped = client.scatter(shipped, broadcast=True, hash=False)

    def run(self, batches):
        """Yield ``(rows, step output)`` for each batch of index arrays, in order."""
        return self._sync(batches) if self.mode == "sync" else self._local(batches)

    def _submit(self, worker, fn, *args):
        return self.client.submit(fn, self.shipped, *self.data, *args, workers=[worker],
                                  allow_other_workers=True, pure=False)

    def _sync(self, batches):
        for idx in batches:
            params = self.step.parameters()
            parts = np.array_split(idx, len(self.workers))
            futures = [self._submit(w, _sync_shard, part, params, self.step.reduce,
                                    self.step.seeds(shard=k))
                       for k, (w, part) in enumerate(zip(self.workers, parts)) if len(part)]
            yield len(idx), self.step.update(self.client.gather(futures))

    def _local(self, batches):
        n = len(self.workers)
        per_round = n * self.sync_every
        for start in range(0, len(batches), per_round):
            chunk = batches[start:start + per_round]
            snapshot = _snapshot(self.step)
            futures = [self._submit(w, _local_steps, chunk[i::n], snapshot, i)
                       for i, w in enumerate(self.workers) if chunk[i::n]]
            results = self.client.gather(futures)
            _average_into(self.step, [(r[0], r[1]) for r in results])
            for j in range(len(chunk)):                 # outputs in the batches' order
                yield len(chunk[j]), results[j % n][2][j // n]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        """Release the arrays and code held on the workers."""
        self.client.cancel([*self.data, self.shipped])
        return False


def _sync_shard(gradient, x, y, idx, params, reduce, seeds=()):
    return shard_gradient(gradient, params, reduce, x[idx], y[idx], seeds=seeds)


def _snapshot(step):
    """Everything a step's update depends on, as plain arrays."""
    return {"params": dict(step.params), "state": dict(step.state),
            "lr": step.lr_array.copy(), "step": step.step_array.copy()}


def _local_steps(shipped, x, y, batches, snapshot, replica=0):
    """On a worker: a private copy of the shipped step (threaded workers share one
    replica; the copy's Functions come from the process's memo), set to `snapshot`,
    takes one step per batch; returns (examples seen, its new snapshot, the outputs).
    A step with seed inputs (dropout) draws its own numbers on each `replica`."""
    step = copy.deepcopy(shipped)
    if getattr(step, "seed_inputs", ()):
        step.seed = optim.step_seed(step.seed, replica + 1)
    for name, value in snapshot["params"].items():
        step.params[name][...] = value
    for name, value in snapshot["state"].items():
        step.state[name][...] = value
    step.lr_array[...], step.step_array[...] = snapshot["lr"], snapshot["step"]
    outputs = [step(x[idx], y[idx]) for idx in batches]
    return sum(len(idx) for idx in batches), _snapshot(step), outputs


def _average_into(step, results):
    """Write the example-weighted mean of the workers' parameters and state into the
    client's step; its step count becomes the furthest any worker got."""
    total = sum(rows for rows, _ in results)
    for group in ("params", "state"):
        for name, target in getattr(step, group).items():
            mean = sum(rows * snap[group][name].astype(np.float64) for rows, snap in results)
            target[...] = mean / total
    step.step_array[...] = max(snap["step"][0] for _, snap in results)
    step.lr_array[...] = results[-1][1]["lr"]
