"""Every example runs and prints what it promises."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EXPECTED = {
    "worked_example.py": "(np.float64(-12.0), np.float64(-4.0), np.float64(-4.0), np.float64(3.0))",
    "neuron_chain.py": "output a_L after training: 0.2",
    "rosenbrock_adam.py": "step  5000",
    "mnist_handwritten_loop.py": "epoch 8: test accuracy",
    "vanishing_gradients.py": "sigmoid depth 50",
    "forward_vs_reverse.py": "x backprop",
    "embedding_bag.py": "test accuracy 1.000",
    "two_branches.py": "ok (tolerance 1e-05)",
    "attention.py": "checks: forward ok, gradient ok, held-out loss below 10% of the "
                    "untrained student's: True",
}


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_example_runs(name):
    assert name in EXPECTED, f"add the expected output of {name} to EXPECTED"
    out = subprocess.run([sys.executable, str(EXAMPLES / name)], capture_output=True, text=True,
                         timeout=600, env=dict(os.environ))
    assert out.returncode == 0, out.stderr[-2000:]
    assert EXPECTED[name] in out.stdout
