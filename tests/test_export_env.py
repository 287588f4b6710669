"""An exported module runs where only what its docstring names is installed: a fresh
virtual environment with numpy and numba (and, for matrix products, scipy) — no graphc,
no sympy.  Without scipy, a module that multiplies matrices must say so at import."""

import os
import subprocess
import textwrap
import venv

import numpy as np
import pytest

import graphc as gc


def _pip_install(python, *packages):
    """Install into the venv the versions this process runs (pip's cache usually holds
    them already)."""
    out = subprocess.run([python, "-m", "pip", "install", "--quiet", *packages],
                         capture_output=True, text=True, timeout=600, check=False)
    if out.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"pip install {packages} failed:\n{out.stderr}")
        pytest.skip(f"cannot install {packages} here: {out.stderr.strip()[-200:]}")


def _run(python, directory, code):
    return subprocess.run([python, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=600, cwd=directory, check=False)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """Two exports (elementwise only; with a matrix product) and their expected values."""
    d = tmp_path_factory.mktemp("exports")
    x, w = gc.tensor("x", (3, 4)), gc.tensor("w", (4,))
    rng = np.random.default_rng(0)
    X, W = rng.normal(size=(3, 4)), rng.normal(size=4)
    ew = gc.sum(gc.tanh(x) * 2.0)
    mm = gc.sum(gc.tanh(x @ w))
    gc.export(gc.compile([x], [ew, gc.grad(ew, x)]), d / "ew_grad.py")
    gc.export(gc.compile([x, w], [mm, gc.grad(mm, w)]), d / "mm_grad.py")
    np.savez(d / "data.npz", X=X, W=W,
             ew=2 * np.tanh(X).sum(), ew_g=2 * (1 - np.tanh(X) ** 2),
             mm=np.tanh(X @ W).sum(), mm_g=(1 - np.tanh(X @ W) ** 2) @ X)
    return d


def test_exported_modules_need_only_what_they_say(exports, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True, system_site_packages=False)
    python = str(env_dir / "bin" / "python")
    import numba
    _pip_install(python, f"numpy=={np.__version__}", f"numba=={numba.__version__}")

    check = """
        import numpy as np
        d = np.load("data.npz")
        import ew_grad
        assert "Requires numpy and numba." in ew_grad.__doc__
        v, g = ew_grad.fn(d["X"])
        assert np.allclose(v, d["ew"]) and np.allclose(g, d["ew_g"])
        for banned in ("graphc", "sympy", "scipy"):
            try:
                __import__(banned)
            except ImportError:
                pass
            else:
                raise AssertionError(banned + " is importable in the bare venv")
        try:
            import mm_grad
        except ImportError as e:
            assert "scipy" in str(e) and "pip install scipy" in str(e), e
            print("mm needs scipy")
        print("ew ok")
    """
    out = _run(python, exports, check)
    assert out.returncode == 0, out.stderr
    assert "ew ok" in out.stdout and "mm needs scipy" in out.stdout

    import scipy
    _pip_install(python, f"scipy=={scipy.__version__}")
    out = _run(python, exports, """
        import numpy as np
        d = np.load("data.npz")
        import mm_grad
        assert "Requires numpy, numba and scipy" in mm_grad.__doc__
        v, g = mm_grad.fn(d["X"], d["W"])
        assert np.allclose(v, d["mm"]) and np.allclose(g, d["mm_g"])
        print("mm ok")
    """)
    assert out.returncode == 0, out.stderr
    assert "mm ok" in out.stdout


def test_export_follows_the_umask(exports, tmp_path):
    x = gc.scalar("x")
    fn = gc.compile([x], gc.sin(x))
    old = os.umask(0o027)
    try:
        path = gc.export(fn, tmp_path / "sin.py")
    finally:
        os.umask(old)
    assert (path.stat().st_mode & 0o777) == 0o640
    mask = os.umask(0)
    os.umask(mask)
    assert (exports / "ew_grad.py").stat().st_mode & 0o777 == 0o666 & ~mask
