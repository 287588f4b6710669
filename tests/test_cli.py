"""The graphc command."""

import subprocess
import sys

import graphc
from graphc import cli


def test_version():
    out = subprocess.run([sys.executable, "-m", "graphc.cli", "--version"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == f"graphc {graphc.__version__}"


def test_train_runs_and_reports(capsys, tmp_path):
    code = cli.main(["train", "--epochs", "2", "--limit", "1000", "--hidden", "32", "--lr", "0.005",
                     "--no-progress", "--checkpoint", str(tmp_path / "m.npz")])
    out = capsys.readouterr().out
    assert code == 0
    assert "784 -> 32 -> 10 MLP (relu)" in out and "test accuracy" in out
    accuracy = float(out.rsplit("test accuracy ", 1)[1].split("%")[0])
    assert accuracy > 75          # 1,000 digits, 2 epochs: far above chance (10%)
    assert (tmp_path / "m.npz").exists()


def test_plot_without_matplotlib_says_how_to_get_it(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    cli._plot({"epoch": [1], "loss": [1.0], "val_loss": [1.0], "val_accuracy": [0.5]},
              "curves.png")
    assert "pip install 'graphc[plot]'" in capsys.readouterr().err


def test_demo_trains_on_integer_labels_and_times_the_tape(capsys):
    """The demo feeds MNIST's integer class ids straight to the model (no one-hot)."""
    from graphc import data
    assert data.load_mnist().y_train.dtype.kind == "i"
    code = cli.main(["demo", "--epochs", "1", "--hidden", "32", "--lr", "0.005",
                     "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0 and "8000 training / 2000 test digits" in out
    accuracy = float(out.rsplit("test accuracy ", 1)[1].split("%")[0])
    loss = float(out.split("  loss ", 1)[1].split()[0])
    assert accuracy > 85 and loss < 1.0      # one epoch of 8,000 digits (chance: 10%, 2.3)
    assert "eager tape" in out and "x faster" in out
