"""The README's first example runs as written, and gives the numbers it shows."""

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_first_look_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    monkeypatch.chdir(tmp_path)                       # gc.export writes f_grad.py here
    namespace = {}
    exec(compile(blocks[0], "README first look", "exec"), namespace)
    gc, x = namespace["gc"], namespace["x"]
    assert namespace["fn"](-2.0, 5.0, -4.0) == (-12.0, -4.0, -4.0, 3.0)
    assert gc.evaluate(namespace["gxx"], {x: 2.0}) == 12.0
    assert (tmp_path / "f_grad.py").exists()
    exec(compile(blocks[2], "README tape", "exec"), namespace)
    t = namespace["t"]
    assert t.grad.tolist() == (namespace["np"].exp(t.data) * (1 + t.data)).tolist()
