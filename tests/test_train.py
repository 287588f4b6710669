"""The training loop: loss falls, checkpoints round-trip atomically, refuse mismatches,
and resuming continues where training stopped."""

import numpy as np
import pytest

import graphc as gc
from graphc import nn, optim, train


def blobs(n=240, seed=0):
    """Three separable Gaussian blobs in 4-D."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    centers = np.array([[2, 0, 0, 0], [0, 2, 0, 0], [0, 0, 2, 0]], dtype=np.float32)
    x = (centers[labels] + 0.5 * rng.standard_normal((n, 4))).astype(np.float32)
    return x, np.eye(3, dtype=np.float32)[labels]


@pytest.fixture(scope="module")
def model():
    X, Y = gc.tensor("X", (None, 4), "float32"), gc.tensor("Y", (None, 3), "float32")
    logits, params, init = nn.mlp(X, (4, 8, 3), "relu", seed=1)
    loss, acc = nn.softmax_cross_entropy(logits, Y), nn.accuracy(logits, Y)
    measure = gc.compile([X, Y] + params, [loss, acc])

    def make_step():
        return optim.compile_step(loss, params, [X, Y], optim.Adam(0.05), init=init)

    def evaluate_with(step):
        def evaluate(x, y):
            value, accuracy = measure(x, y, *[step.params[p.name] for p in params])
            return {"val_loss": float(value), "val_accuracy": float(accuracy)}
        return evaluate
    return make_step, evaluate_with


def test_loss_falls_and_accuracy_rises(model):
    make_step, evaluate_with = model
    step = make_step()
    x, y = blobs()
    history = train.fit(step, x, y, epochs=5, batch_size=32, validation=blobs(seed=1),
                        evaluate=evaluate_with(step), progress=False)
    assert len(history) == 5
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert history["val_accuracy"][-1] > 0.9


def test_checkpoint_round_trip_and_resume(model, tmp_path):
    make_step, evaluate_with = model
    x, y = blobs()
    path = tmp_path / "model.npz"
    straight = make_step()
    train.fit(straight, x, y, epochs=4, batch_size=32, progress=False)
    first = make_step()
    train.fit(first, x, y, epochs=2, batch_size=32, checkpoint=path, progress=False)
    resumed = make_step()
    train.fit(resumed, x, y, epochs=4, batch_size=32, checkpoint=path, resume=True,
              progress=False)
    for name in straight.params:
        np.testing.assert_allclose(resumed.params[name], straight.params[name], rtol=1e-6)
    assert resumed.step == straight.step == 4 * 8


def test_mismatched_checkpoint_is_refused(model, tmp_path):
    make_step, _ = model
    step = make_step()
    path = tmp_path / "model.npz"
    train.save_checkpoint(path, step, epoch=1)
    saved = dict(np.load(path))
    saved["param/W1"] = saved["param/W1"].astype(np.float64)
    np.savez(tmp_path / "dtype.npz", **saved)
    before = step.params["W1"].copy()
    with pytest.raises(ValueError, match="param/W1.*float64"):
        train.load_checkpoint(tmp_path / "dtype.npz", step)
    saved["param/W1"] = np.zeros((5, 8), np.float32)
    np.savez(tmp_path / "shape.npz", **saved)
    with pytest.raises(ValueError, match=r"param/W1.*\(5, 8\)"):
        train.load_checkpoint(tmp_path / "shape.npz", step)
    np.testing.assert_array_equal(step.params["W1"], before)        # nothing loaded


def test_a_failed_write_keeps_the_previous_checkpoint(model, tmp_path, monkeypatch):
    make_step, _ = model
    step = make_step()
    path = tmp_path / "model.npz"
    train.save_checkpoint(path, step, epoch=1)
    good = path.read_bytes()

    def crash(file, **arrays):
        file.write(b"partial data")
        raise KeyboardInterrupt("killed mid-write")
    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        train.save_checkpoint(path, step, epoch=2)
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]     # no temp file left
    monkeypatch.undo()
    assert train.load_checkpoint(path, step) == 1


def test_killed_writer_process_leaves_the_checkpoint_intact(tmp_path):
    """A process killed (SIGKILL) while writing leaves the old checkpoint loadable."""
    import subprocess
    import sys
    import textwrap
    path = tmp_path / "ck.npz"
    np.savez(path, a=np.arange(3))
    script = textwrap.dedent(f"""
        import os, signal, numpy as np
        from graphc import train
        real = np.savez
        def slow(file, **arrays):
            file.write(b"half")
            file.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        np.savez = slow
        class Step: params = {{"w": np.ones(2)}}; state = {{}}; lr_array = np.ones(1); step_array = np.zeros(1)
        train.save_checkpoint({str(path)!r}, Step, epoch=3)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert out.returncode != 0
    assert np.load(path)["a"].tolist() == [0, 1, 2]


def test_batches_cover_everything_once():
    parts = train.batches(10, 4, np.random.default_rng(0))
    assert [len(p) for p in parts] == [4, 4, 2]
    assert sorted(np.concatenate(parts).tolist()) == list(range(10))


# --- integer class labels ----------------------------------------------------------------

def test_accuracy_takes_integer_labels_on_every_backend():
    z = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0], [0.0, 5.0, 0.0], [1.0, 1.0, 0.0]])
    ids = np.array([2, 0, 0, 1])      # right, right, wrong, tied for the maximum: right
    Z, L = gc.tensor("Z", (None, 3)), gc.tensor("labels", (None,), "int64")
    Y = gc.tensor("Y", (None, 3))
    assert float(gc.evaluate(nn.accuracy(Z, L), {Z: z, L: ids})) == 0.75
    assert float(gc.evaluate(nn.accuracy(Z, Y), {Z: z, Y: np.eye(3)[ids]})) == 0.75
    assert float(nn.accuracy(gc.tape.Tensor(z), ids).data) == 0.75
    f = gc.compile([Z, L], [nn.accuracy(Z, L), nn.softmax_cross_entropy(Z, L)])
    acc, loss = f(z, ids)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    assert float(acc) == 0.75
    assert float(loss) == pytest.approx(-np.mean(log_p[np.arange(4), ids]), rel=1e-12)
    with pytest.raises(IndexError):
        f(z, np.array([2, 0, 0, 3]))
    with pytest.raises(IndexError, match="label 3 is out of range"):
        nn.accuracy(gc.tape.Tensor(z), np.array([2, 0, 0, 3]))


def test_fit_with_integer_labels_matches_one_hot_training():
    x, onehot = blobs()
    ids = onehot.argmax(axis=1)
    xv, onehot_v = blobs(seed=1)
    ids_v = onehot_v.argmax(axis=1)
    X = gc.tensor("X", (None, 4), "float32")
    runs = {}
    for name, target, y, yv in [("ids", gc.tensor("labels", (None,), "int64"), ids, ids_v),
                                ("onehot", gc.tensor("Y", (None, 3), "float32"), onehot,
                                 onehot_v)]:
        logits, params, init = nn.mlp(X, (4, 8, 3), "relu", seed=1)
        loss, acc = nn.softmax_cross_entropy(logits, target), nn.accuracy(logits, target)
        step = optim.compile_step(loss, params, [X, target], optim.Adam(0.05), init=init)
        measure = gc.compile([X, target] + params, [loss, acc])

        def evaluate(xs, ys, step=step, params=params, measure=measure):
            value, accuracy = measure(xs, ys, *[step.params[p.name] for p in params])
            return {"val_loss": float(value), "val_accuracy": float(accuracy)}
        runs[name] = train.fit(step, x, y, epochs=3, batch_size=32, validation=(xv, yv),
                               evaluate=evaluate, progress=False)
        if name == "ids":
            with pytest.raises(ValueError, match="takes integer class ids"):
                train.fit(step, x, onehot, progress=False)
        else:
            with pytest.raises(ValueError, match="takes one-hot rows"):
                train.fit(step, x, ids, progress=False)
    a, b = runs["ids"], runs["onehot"]
    np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-5)      # the same training
    np.testing.assert_allclose(a["val_loss"], b["val_loss"], rtol=1e-5)
    assert a["val_accuracy"] == b["val_accuracy"]
    assert a["loss"][-1] < 0.3 * a["loss"][0] and a["val_accuracy"][-1] >= 0.95
