"""The training loop: mini-batches, validation, early stopping, checkpoints.

``fit`` drives a compiled ``TrainStep`` (see ``graphc.optim.compile_step``): each step
is one kernel call, so the loop itself is the only Python cost per batch.
Checkpoints are ``.npz`` files (never pickle) written atomically: a crash mid-write
leaves the previous checkpoint intact."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .atomic import atomic_write
from .optim import step_seed


@dataclass
class History:
    """Per-epoch records: loss (mean over batches), validation metrics, seconds."""
    epochs: list = field(default_factory=list)

    def append(self, **record):
        self.epochs.append(record)

    def __getitem__(self, key):
        return [e.get(key) for e in self.epochs]

    def __len__(self):
        return len(self.epochs)


def save_checkpoint(path, step, epoch, history=None):
    """Parameters, optimizer state, learning rate, step count and epoch, as .npz,
    written to a temporary file in the same directory and renamed over `path`."""
    path = Path(path)
    arrays = {f"param/{k}": v for k, v in step.params.items()}
    arrays.update({f"state/{k}": v for k, v in step.state.items()})
    arrays["meta/lr"], arrays["meta/step"] = step.lr_array, step.step_array
    arrays["meta/epoch"] = np.array([epoch])
    if history is not None and len(history):
        arrays["meta/loss"] = np.array(history["loss"], dtype=np.float64)
    atomic_write(path, lambda f: np.savez(f, **arrays))


def load_checkpoint(path, step):
    """Load a checkpoint into `step`'s arrays (in place); returns the saved epoch.

    Refuses (``ValueError`` naming the array) a checkpoint whose arrays are missing or
    differ in shape or dtype from the model's: nothing is loaded then."""
    with np.load(path, allow_pickle=False) as saved:
        targets = {f"param/{k}": v for k, v in step.params.items()}
        targets.update({f"state/{k}": v for k, v in step.state.items()})
        targets["meta/lr"], targets["meta/step"] = step.lr_array, step.step_array
        for key, target in targets.items():
            if key not in saved:
                raise ValueError(f"checkpoint {path}: no array {key!r}")
            value = saved[key]
            if value.shape != target.shape or value.dtype != target.dtype:
                raise ValueError(f"checkpoint {path}: {key!r} is {value.dtype} {value.shape}, "
                                 f"but the model has {target.dtype} {target.shape}")
        for key, target in targets.items():
            target[...] = saved[key]
        return int(saved["meta/epoch"][0])


def batches(n, batch_size, rng):
    """Index arrays of shuffled mini-batches covering all n examples (the last one may
    be smaller: compiled steps take any batch size)."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def fit(step, x_train, y_train, *, epochs=1, batch_size=64, seed=0, validation=None,
        evaluate=None, early_stopping=None, checkpoint=None, resume=False, progress=True,
        shuffle=True, client=None, data_parallel="sync", sync_every=8):
    """Train `step` on (x_train, y_train).

    `evaluate(x, y) -> dict` computes validation metrics on `validation=(x_val, y_val)`
    after each epoch (e.g. ``{"val_loss": ..., "val_accuracy": ...}``); with
    `early_stopping=k`, training stops when ``val_loss`` has not improved for k epochs.
    With `checkpoint`, the model is saved after every epoch; with `resume`, training
    continues from it.  Returns a History.

    With a Dask `client` (``pip install "graphc[dask]"``) the steps run on its workers
    (see ``graphc.dask.training``): ``data_parallel="sync"`` splits every batch across
    them and averages the gradients before one update (the step must come from
    ``graphc.dask.compile_step``); ``"local"`` lets each worker take `sync_every` steps
    on its own batches between parameter averages (local SGD).

    Targets are whatever the step's second data input takes: integer class ids (N,)
    for an int64 input (``gc.tensor("labels", (None,), "int64")``, with
    ``nn.softmax_cross_entropy`` / ``nn.accuracy``), or one-hot float rows (N, K)."""
    if len(x_train) != len(y_train):
        raise ValueError(f"fit: {len(x_train)} inputs but {len(y_train)} targets")
    _check_targets(step, y_train)
    if batch_size < 1:
        raise ValueError(f"fit: batch_size must be positive, got {batch_size}")
    history, start = History(), 0
    if resume and checkpoint and Path(checkpoint).exists():
        start = load_checkpoint(checkpoint, step)
    rng = np.random.default_rng(seed)
    for _ in range(start):                      # the same shuffles as an unbroken run
        rng.permutation(len(x_train))
    best, waited = np.inf, 0
    with _runner(client, step, x_train, y_train, data_parallel, sync_every, seed) as runner:
        for epoch in range(start, epochs):
            t0 = time.perf_counter()
            losses, extras = [], []
            bar = _progress(len(x_train), epoch, epochs, progress)
            order = batches(len(x_train), batch_size, rng if shuffle else None)
            t = time.perf_counter()
            for rows, out in runner.run(order):
                loss, extra = _split_outputs(out)
                losses.append(loss)
                extras.append(extra)
                if bar is not None:
                    bar.update(rows)
                    bar.set_postfix(loss=f"{losses[-1]:.4f}",
                                    ex_per_s=f"{rows / max(time.perf_counter() - t, 1e-9):,.0f}")
                t = time.perf_counter()
            if bar is not None:
                bar.close()
            record = {"epoch": epoch + 1, "loss": float(np.mean(losses)),
                      "seconds": time.perf_counter() - t0}
            for name, values in zip(getattr(step, "extra_names", ()), zip(*extras)):
                record[name] = float(np.mean(values))
            if validation is not None and evaluate is not None:
                record.update(evaluate(*validation))
            history.append(**record)
            if checkpoint:
                save_checkpoint(checkpoint, step, epoch + 1, history)
            if early_stopping and "val_loss" in record:
                if record["val_loss"] < best:
                    best, waited = record["val_loss"], 0
                else:
                    waited += 1
                    if waited >= early_stopping:
                        break
    return history


def _check_targets(step, y):
    """A clear error for integer class ids given to a step compiled for one-hot rows,
    or one-hot rows given to a step that takes class ids."""
    inputs = getattr(step, "data_inputs", None) or ()
    if len(inputs) != 2 or not hasattr(y, "dtype") or not hasattr(y, "ndim"):
        return
    target, kind = inputs[1], np.dtype(y.dtype).kind
    if target.dtype.kind in "iu" and len(target.shape) == 1 and y.ndim == 2 and kind == "f":
        raise ValueError(f"fit: the step's input {target.name!r} takes integer class ids "
                         f"(N,), got one-hot rows of shape {tuple(y.shape)}; pass "
                         "y.argmax(axis=1), or compile the step with a float (N, K) input")
    if target.dtype.kind == "f" and len(target.shape) == 2 and y.ndim == 1 and kind in "iu":
        raise ValueError(f"fit: the step's input {target.name!r} takes one-hot rows (N, K), "
                         f"got integer class ids of shape {tuple(y.shape)}; compile the step "
                         f"with an int64 input, gc.tensor({target.name!r}, (None,), "
                         "\"int64\"), to pass them directly, or one-hot them "
                         "(graphc.data.one_hot)")


def _runner(client, step, x_train, y_train, data_parallel, sync_every, seed=0):
    """What runs the steps: this process, or a ``graphc.dask`` Runner on the client's
    workers (a context manager: it releases what it placed on them)."""
    if client is None:
        return _LocalRunner(step, x_train, y_train, seed)
    try:
        from .dask.training import Runner
    except ImportError as exc:
        raise ImportError(f"fit(client=...) needs graphc's Dask extra: {exc}") from exc
    return Runner(client, step, x_train, y_train, data_parallel, sync_every)


class _LocalRunner:
    """One step per batch, in this process.  A step with seed inputs (dropout) gets a
    fresh seed per step, mixed from fit's `seed` and the step count (so a resumed run
    draws what an unbroken one would)."""

    def __init__(self, step, x, y, seed=0):
        self.step, self.x, self.y, self.seed = step, x, y, seed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def run(self, batch_list):
        """Yield ``(rows, step output)`` for each batch of index arrays."""
        seeded = bool(getattr(self.step, "seed_inputs", ()))
        for idx in batch_list:
            if seeded:
                fresh = step_seed(self.seed, self.step.step)
                yield len(idx), self.step(self.x[idx], self.y[idx], seed=fresh)
            else:
                yield len(idx), self.step(self.x[idx], self.y[idx])


def _split_outputs(out):
    """(loss, extra outputs) from a step's result: the loss alone, or a tuple whose
    first element is the loss (``compile_step(..., extra_outputs=...)``)."""
    if isinstance(out, tuple):
        return float(out[0]), tuple(float(np.mean(v)) for v in out[1:])
    return float(out), ()


def _progress(total, epoch, epochs, enabled):
    if not enabled:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=f"epoch {epoch + 1}/{epochs}", unit="ex", leave=False)


__all__ = ["History", "batches", "fit", "load_checkpoint", "save_checkpoint"]
