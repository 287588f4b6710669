"""Convolution and pooling: values against direct loops (and scipy.signal.correlate) for
every option, finite-difference gradients, ties in max-pooling, shape errors, the
compiled code (all cases in one Function) and a small CNN that learns."""

import numpy as np
import pytest
from scipy.signal import correlate

import graphc as gc
from checks import check_against_finite_differences
from op_cases_conv import conv2d_reference, pool_reference

rng = np.random.default_rng(7)


def U(*shape):
    return rng.uniform(-1, 1, size=shape)


# name -> (build, x, w, reference); tiny shapes, every option
CONV = {
    "int padding": (lambda x, w: gc.conv2d(x, w, padding=1), U(2, 2, 5, 5), U(3, 2, 3, 3),
                    lambda x, w: conv2d_reference(x, w, padding=(1, 1, 1, 1))),
    "pair padding": (lambda x, w: gc.conv2d(x, w, padding=(0, 2)), U(2, 2, 5, 5), U(3, 2, 3, 3),
                     lambda x, w: conv2d_reference(x, w, padding=(0, 0, 2, 2))),
    "same, even kernel": (lambda x, w: gc.conv2d(x, w, padding="same"), U(2, 2, 5, 6),
                          U(2, 2, 2, 4), lambda x, w: conv2d_reference(x, w, padding=(0, 1, 1, 2))),
    "valid": (lambda x, w: gc.conv2d(x, w, padding="valid"), U(1, 2, 5, 5), U(2, 2, 3, 2),
              lambda x, w: conv2d_reference(x, w)),
    "stride": (lambda x, w: gc.conv2d(x, w, stride=2, padding=1), U(2, 2, 6, 5), U(2, 2, 3, 3),
               lambda x, w: conv2d_reference(x, w, (2, 2), (1, 1, 1, 1))),
    "stride pair, dilation": (lambda x, w: gc.conv2d(x, w, stride=(1, 2), dilation=2),
                              U(1, 2, 6, 7), U(2, 2, 2, 3),
                              lambda x, w: conv2d_reference(x, w, (1, 2), dilation=(2, 2))),
    "groups": (lambda x, w: gc.conv2d(x, w, groups=2, padding=1), U(2, 4, 4, 4), U(6, 2, 3, 3),
               lambda x, w: conv2d_reference(x, w, padding=(1, 1, 1, 1), groups=2)),
    "depthwise": (lambda x, w: gc.conv2d(x, w, groups=3), U(2, 3, 4, 5), U(3, 1, 2, 2),
                  lambda x, w: conv2d_reference(x, w, groups=3)),
    "conv1d": (lambda x, w: gc.conv1d(x, w, stride=2, padding=1, dilation=2), U(2, 2, 9),
               U(3, 2, 3), lambda x, w: conv2d_reference(x[:, :, None], w[:, :, None], (1, 2),
                                                         (0, 0, 1, 1), (1, 2))[:, :, 0]),
    "conv1d same, groups": (lambda x, w: gc.conv1d(x, w, padding="same", groups=2), U(1, 4, 7),
                            U(2, 2, 3), lambda x, w: conv2d_reference(
                                x[:, :, None], w[:, :, None], padding=(0, 0, 1, 1),
                                groups=2)[:, :, 0]),
}


def test_reference_is_scipy_correlate():
    """The loop reference agrees with scipy.signal.correlate (single channel, valid)."""
    x, w = U(1, 1, 6, 5), U(1, 1, 3, 2)
    assert np.allclose(conv2d_reference(x, w)[0, 0], correlate(x[0, 0], w[0, 0], mode="valid"))


@pytest.mark.parametrize("name", list(CONV))
def test_conv_values_and_gradients(name):
    build, x, w, reference = CONV[name]
    inputs, *_ = check_against_finite_differences(build, [x, w], f"conv2d {name}")
    got = gc.evaluate(build(*inputs), dict(zip(inputs, [x, w])))
    np.testing.assert_allclose(got, reference(x, w), rtol=1e-12, atol=1e-12)


def test_pool_values_and_gradients():
    x = (rng.permutation(2 * 2 * 5 * 6) * 0.1).reshape(2, 2, 5, 6)
    for kind, fn in (("max", gc.max_pool2d), ("mean", gc.avg_pool2d)):
        for k, s, p in ((2, None, 0), (3, 2, 1), ((2, 3), (1, 2), (1, 1))):
            kk = (k, k) if isinstance(k, int) else k
            ss = kk if s is None else ((s, s) if isinstance(s, int) else s)
            pp = (p, p) if isinstance(p, int) else p
            what = f"{kind} pool {k} {s} {p}"
            inputs, *_ = check_against_finite_differences(
                lambda a, fn=fn, k=k, s=s, p=p: fn(a, k, stride=s, padding=p), [x], what)
            got = gc.evaluate(fn(inputs[0], k, stride=s, padding=p), {inputs[0]: x})
            np.testing.assert_allclose(got, pool_reference(x, kk, ss, pp, kind), err_msg=what)


def test_max_pool_ties_send_the_gradient_to_the_first_maximum():
    x = np.array([[[[1.0, 3.0, 3.0, 0.0],
                    [3.0, 2.0, 5.0, 5.0],
                    [0.0, 0.0, 7.0, 7.0],
                    [0.0, 0.0, 7.0, 7.0]]]])
    X = gc.tensor("X", (None, 1, 4, 4))
    g = gc.grad(gc.sum(gc.max_pool2d(X, 2)), X)
    want = np.zeros((1, 1, 4, 4))
    want[0, 0, 0, 1] = want[0, 0, 1, 2] = want[0, 0, 2, 0] = want[0, 0, 2, 2] = 1.0
    fn = gc.compile([X], [gc.max_pool2d(X, 2), g])
    for value, grad in (fn(x), gc.evaluate([gc.max_pool2d(X, 2), g], {X: x})):
        np.testing.assert_array_equal(value, [[[[3.0, 5.0], [0.0, 7.0]]]])
        np.testing.assert_array_equal(grad, want)


def test_compiled_agrees_with_the_interpreter():
    """Value and gradients with a dynamic batch, float64 and float32, for the options
    the op table's compiled bundle does not cover (it compiles int padding, strides,
    pair padding, dilation, groups and conv1d): one compiled Function."""
    inputs, feeds, outputs = [], [], []
    compiled = {"same, even kernel": ("float64",), "depthwise": ("float64",),
                "stride": ("float32",), "conv1d": ("float64",)}
    for k, (name, (build, x, w, _)) in enumerate(CONV.items()):
        for dt in compiled.get(name, ()):
            X = gc.tensor(f"x{k}{dt}", (None,) + x.shape[1:], dt)
            W = gc.tensor(f"w{k}{dt}", w.shape, dt)
            y = build(X, W)
            cost = gc.sum(y * y)
            inputs += [X, W]
            feeds += [x.astype(dt), w.astype(dt)]
            outputs += [y, *gc.grad(cost, [X, W])]
    P = gc.tensor("p", (None, 2, 5, 6))
    pooled = gc.max_pool2d(P, 3, 2, 1) + gc.avg_pool2d(P, 3, 2, 1)
    inputs.append(P)
    feeds.append(U(2, 2, 5, 6))
    outputs += [pooled, gc.grad(gc.sum(pooled * pooled), P)]
    got = gc.compile(inputs, outputs)(*feeds)
    want = gc.evaluate(outputs, dict(zip(inputs, feeds)))
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.dtype == w.dtype, i
        tol = 1e-5 if g.dtype == np.float32 else 1e-12
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol, err_msg=f"output {i}")


def test_shape_errors_name_the_shapes():
    x = gc.tensor("x", (None, 3, 8, 8))
    with pytest.raises(gc.ShapeError, match=r"\(\?, 3, 8, 8\).*\(4, 2, 3, 3\)"):
        gc.conv2d(x, gc.tensor("w", (4, 2, 3, 3)))            # channel mismatch
    with pytest.raises(gc.ShapeError, match="groups=2"):
        gc.conv2d(x, gc.tensor("w2", (4, 1, 3, 3)), groups=2)  # 2 does not divide 3
    with pytest.raises(gc.ShapeError, match="larger than the padded input"):
        gc.conv2d(x, gc.tensor("w3", (4, 3, 9, 3)))
    with pytest.raises(gc.ShapeError, match="larger than the padded input"):
        gc.max_pool2d(x, 9)
    with pytest.raises(ValueError, match="stride 1"):
        gc.conv2d(x, gc.tensor("w4", (4, 3, 3, 3)), stride=2, padding="same")


def test_tape():
    x, w = U(2, 2, 5, 5), U(3, 2, 3, 3)
    from graphc import tape
    tx, tw = tape.Tensor(x, requires_grad=True), tape.Tensor(w, requires_grad=True)
    out = gc.sum(gc.max_pool2d(gc.relu(gc.conv2d(tx, tw, padding=1)), 2))
    out.backward()
    X, W = gc.tensor("X", x.shape), gc.tensor("W", w.shape)
    cost = gc.sum(gc.max_pool2d(gc.relu(gc.conv2d(X, W, padding=1)), 2))
    gx, gw = gc.evaluate(gc.grad(cost, [X, W]), {X: x, W: w})
    np.testing.assert_allclose(tx.grad, gx)
    np.testing.assert_allclose(tw.grad, gw)


def test_a_small_cnn_learns_digits():
    """1,000 bundled digits, 2 epochs of a small CNN: above 85% on 500 test digits."""
    from graphc import data, nn, optim, train
    mnist = data.load_mnist(None, seed=0)
    X, Y = gc.tensor("X", (None, 784), "float32"), gc.tensor("Y", (None, 10), "float32")
    logits, params, init = nn.cnn(X, channels=(8, 16), hidden=64)
    loss, acc = nn.softmax_cross_entropy(logits, Y), nn.accuracy(logits, Y)
    step = optim.compile_step(loss, params, [X, Y], optim.OPTIMIZERS["adam"](lr=2e-3), init=init)
    train.fit(step, mnist.x_train[:1000], data.one_hot(mnist.y_train[:1000]), epochs=2,
              batch_size=32, progress=False)
    measure = gc.compile([X, Y] + params, acc)
    accuracy = measure(mnist.x_test[:500], data.one_hot(mnist.y_test[:500]),
                       *[step.params[p.name] for p in params])
    assert accuracy > 0.85, accuracy


def test_cli_train_model_cnn(capsys):
    """`graphc train --model cnn` on a few digits, and the demo's tape comparison of the
    CNN (one block of one step each)."""
    from graphc import cli
    args = cli.build_parser().parse_args(
        ["train", "--model", "cnn", "--channels", "4,8", "--hidden", "16", "--epochs", "1",
         "--limit", "500", "--batch-size", "16", "--lr", "0.003", "--no-progress"])
    step, params, history, (x, y) = cli._train(args)
    cli._compare_with_tape(args, step, params, (x[:16], y[:16]), repeats=1, rounds=1)
    out = capsys.readouterr().out
    assert "conv4+pool -> conv8+pool -> 16 -> 10 CNN (relu)" in out
    assert "test accuracy" in out and "eager tape" in out
    assert history.epochs[-1]["val_accuracy"] > 0.2      # 500 digits, one epoch: above chance
