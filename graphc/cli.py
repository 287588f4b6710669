"""The ``graphc`` command: ``graphc demo`` trains an MNIST digit classifier with
compiled kernels and measures it against the eager tape; ``graphc train`` exposes
the options."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from . import viz_cli


def build_parser():
    from .version import __version__
    parser = argparse.ArgumentParser(
        prog="graphc", description="Compile symbolic expressions to fast gradient code.")
    parser.add_argument("--version", action="version", version=f"graphc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser("demo", help="train an MNIST MLP on the bundled data and compare "
                                       "its speed with the eager tape")
    _training_options(demo, epochs=12)
    train = sub.add_parser("train", help="train an MLP on MNIST with your choice of options")
    _training_options(train, epochs=10)
    train.add_argument("--data-dir", help="directory with the full MNIST IDX files "
                                          "(default: $GRAPHC_MNIST_DIR or the bundled set)")
    train.add_argument("--checkpoint", help="save the model here (.npz) after every epoch")
    train.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    train.add_argument("--plot", metavar="PATH", help="save loss/accuracy curves (matplotlib)")
    train.add_argument("--early-stopping", type=int, metavar="K",
                       help="stop when the validation loss has not improved for K epochs")
    train.add_argument("--limit", type=int, help=argparse.SUPPRESS)   # for quick tests
    viz_cli.add_commands(sub)
    return parser


def _training_options(p, epochs):
    from .optim import OPTIMIZERS
    p.add_argument("--model", choices=["mlp", "cnn"], default="mlp",
                   help="mlp, or cnn: a LeNet-style network (convolutions, ReLU, max-pooling)")
    p.add_argument("--channels", default="16,32",
                   help="cnn: channels of its 5x5 convolution layers, e.g. 16,32")
    p.add_argument("--hidden", default="128", help="hidden layer sizes, e.g. 128 or 256,128 "
                                                   "(cnn: one dense layer's size)")
    p.add_argument("--activation", choices=["relu", "sigmoid", "tanh"], default="relu")
    p.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="adam")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _model(args, data):
    """The compiled training step and evaluation function for the chosen MLP."""
    from . import compile as gc_compile
    from . import nn, optim, tensor
    sizes = [784] + [int(h) for h in str(args.hidden).split(",") if h] + [10]
    X, Y = tensor("X", (None, 784), "float32"), tensor("labels", (None,), "int64")
    if getattr(args, "model", "mlp") == "cnn":
        channels = tuple(int(c) for c in str(args.channels).split(",") if c)
        from . import random
        logits, params, init = nn.cnn(X, channels=channels, hidden=sizes[1], seed=args.seed,
                                      dropout_rate=0.25, dropout_seed=random.seed())
        sizes = ["1x28x28"] + [f"conv{c}+pool" for c in channels] + sizes[1:2] + [10]
        plain = nn.cnn_forward(X, params)          # without dropout, for evaluation
    else:
        logits, params, init = nn.mlp(X, sizes, args.activation, seed=args.seed)
        plain = logits
    loss = nn.softmax_cross_entropy(logits, Y)
    loss_eval, acc = nn.softmax_cross_entropy(plain, Y), nn.accuracy(plain, Y)
    optimizer = optim.OPTIMIZERS[args.optimizer](lr=args.lr)
    step = optim.compile_step(loss, params, [X, Y], optimizer, init=init)
    measure = gc_compile([X, Y] + params, [loss_eval, acc])

    def evaluate(x, y):
        value, accuracy = measure(x, y, *[step.params[p.name] for p in params])
        return {"val_loss": float(value), "val_accuracy": float(accuracy)}
    return step, evaluate, sizes, params


def _train(args):
    from . import data, train
    mnist = data.load_mnist(getattr(args, "data_dir", None), seed=args.seed)
    x_train, y_train = mnist.x_train, mnist.y_train      # integer class ids, 0..9
    x_test, y_test = mnist.x_test, mnist.y_test
    if getattr(args, "limit", None):
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
    t0 = time.perf_counter()
    step, evaluate, sizes, params = _model(args, data)
    compile_seconds = time.perf_counter() - t0
    kind = "CNN (relu)" if getattr(args, "model", "mlp") == "cnn" else f"MLP ({args.activation})"
    print(f"graphc: {' -> '.join(map(str, sizes))} {kind}, {args.optimizer} "
          f"lr={args.lr}, batch {args.batch_size}, {len(x_train)} training / {len(x_test)} "
          f"test digits; code generated in {compile_seconds:.1f} s (Numba compiles it, or "
          f"loads it from the cache, on the first step)")
    history = train.fit(step, x_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
                        seed=args.seed, validation=(x_test, y_test), evaluate=evaluate,
                        early_stopping=getattr(args, "early_stopping", None),
                        checkpoint=getattr(args, "checkpoint", None),
                        resume=getattr(args, "resume", False), progress=not args.no_progress)
    for e in history.epochs:
        print(f"  epoch {e['epoch']:2d}  loss {e['loss']:.4f}  test loss {e['val_loss']:.4f}  "
              f"test accuracy {100 * e['val_accuracy']:.2f}%  ({e['seconds']:.2f} s)")
    if history.epochs:
        final = history.epochs[-1]
        print(f"test accuracy {100 * final['val_accuracy']:.2f}%, "
              f"{np.median(history['seconds']):.2f} s per epoch (median)")
    return step, params, history, (x_train, y_train)


def _compare_with_tape(args, step, params, batch, repeats=10, rounds=5):
    """Median time of one training step, compiled vs the eager tape, interleaved in
    blocks of `repeats` steps (NumPy's and SciPy's BLAS thread pools are separate, and
    one still spinning right after the other's call would slow it down)."""
    from . import api, data, nn, tape
    xb, yb = batch
    # The tape's fastest form of the targets: one-hot rows, built once outside the
    # timing (with integer ids it would build their one-hot rows on every call).
    targets = tape.Tensor(data.one_hot(yb, 10, xb.dtype))
    weights = [tape.Tensor(np.array(step.params[p.name]), requires_grad=True) for p in params]
    state = [[np.zeros_like(w.data), np.zeros_like(w.data)] for w in weights]

    def tape_step(t):
        for w in weights:
            w.zero_grad()
        if getattr(args, "model", "mlp") == "cnn":
            logits = nn.cnn_forward(tape.Tensor(xb), weights)
        else:
            logits = nn.mlp_forward(tape.Tensor(xb), weights, args.activation)
        loss = api.mean(api.cross_entropy(logits, targets))
        loss.backward()
        for w, (m, v) in zip(weights, state):          # Adam, as the compiled step
            m *= 0.9
            m += 0.1 * w.grad
            v *= 0.999
            v += 0.001 * w.grad ** 2
            w.data -= args.lr * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    compiled_times, tape_times, t = [], [], 0
    for _ in range(rounds):
        for _ in range(repeats):
            start = time.perf_counter()
            step(xb, yb)
            compiled_times.append(time.perf_counter() - start)
        for _ in range(repeats):
            t += 1
            start = time.perf_counter()
            tape_step(t)
            tape_times.append(time.perf_counter() - start)
    c, e = np.median(compiled_times), np.median(tape_times)
    print(f"one training step (batch {len(xb)}): compiled {1e3 * c:.2f} ms, eager tape "
          f"{1e3 * e:.2f} ms (medians of {rounds * repeats}, in alternating blocks of "
          f"{repeats}): {e / c:.1f}x faster")


def _plot(history, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("graphc: --plot needs matplotlib: pip install 'graphc[plot]'", file=sys.stderr)
        return
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    a.plot(history["epoch"], history["loss"], label="train")
    a.plot(history["epoch"], history["val_loss"], label="test")
    a.set_xlabel("epoch"), a.set_ylabel("loss"), a.legend()
    b.plot(history["epoch"], [100 * v for v in history["val_accuracy"]])
    b.set_xlabel("epoch"), b.set_ylabel("test accuracy (%)")
    fig.tight_layout()
    fig.savefig(path)
    print(f"saved curves to {path}")


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command in ("explain", "trace"):
        try:
            return viz_cli.run_command(args)
        except viz_cli.ExpressionError as exc:
            parser.error(str(exc))
    step, params, history, (x_train, y_train) = _train(args)
    if args.command == "demo":
        rng = np.random.default_rng(args.seed)
        idx = rng.choice(len(x_train), args.batch_size, replace=False)
        _compare_with_tape(args, step, params, (x_train[idx], y_train[idx]))
    elif args.plot:
        _plot(history, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
