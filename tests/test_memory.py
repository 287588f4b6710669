"""Memory stays bounded over many calls and many compiled functions (a reduced run of
benchmarks/memory.py)."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "memory.py"


def test_memory_is_bounded():
    code = ("import sys; sys.path.insert(0, {!r}); import memory; "
            "print(*memory.measure(40, 20000))").format(str(SCRIPT.parent))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stderr
    start, after_functions, after_calls = map(float, out.stdout.split())
    assert after_calls - after_functions < 5.0          # 20,000 calls: no growth to speak of
    assert after_functions - start < 40 * 2.0           # ~1 MB each: Numba keeps machine code
