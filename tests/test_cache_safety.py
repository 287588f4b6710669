"""The disk cache under concurrency and damage: two processes compiling the same graph
at once, foreign files in the cache directory."""

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import numpy as np, graphc as gc
    v = gc.vector("v", None)
    cost = gc.sum(gc.softplus(v) * gc.cos(v))
    fn = gc.compile([v], [cost, gc.grad(cost, v)])
    value, slope = fn(np.linspace(-2, 2, 9))
    print(repr(float(value)), fn.module.__file__)
""")


def run_concurrently(cache, n=2):
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(cache))
    procs = [subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for _ in range(n)]
    results = [p.communicate(timeout=600) + (p.returncode,) for p in procs]
    for out, err, code in results:
        assert code == 0, err
    return [out.split() for out, _, _ in results]


def test_two_processes_compile_the_same_graph_at_once(tmp_path):
    (v1, path1), (v2, path2) = run_concurrently(tmp_path)
    assert v1 == v2 and path1 == path2
    entries = [p for p in tmp_path.iterdir() if p.suffix == ".py" and "runtime" not in p.name]
    assert len(entries) == 1                              # one valid entry, no temp files
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    (v3, _), = run_concurrently(tmp_path, n=1)            # and it is used afterwards
    assert v3 == v1


def test_foreign_files_in_the_cache_are_ignored_or_rebuilt(tmp_path):
    (value, path), = run_concurrently(tmp_path, n=1)
    (tmp_path / "notes.txt").write_text("not a module")
    (tmp_path / "graphc_00000000000000000000000000000000.py").write_text("raise SystemExit(3)\n")
    with open(path, "w") as f:                            # another graph's module in its place
        f.write("GRAPHC_KEY = 'something else'\nfn = None\n")
    (again, _), = run_concurrently(tmp_path, n=1)
    assert again == value
