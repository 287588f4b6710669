"""Hundreds of bad calls to compiled Functions and an exported module, in a subprocess:
none may crash the interpreter or return garbage; each works (the documented
conversions) or raises TypeError/ValueError naming the input."""

import json
import os
import subprocess
import sys
from pathlib import Path


def test_hostile_calls():
    harness = Path(__file__).with_name("hostile_harness.py")
    out = subprocess.run([sys.executable, str(harness)], capture_output=True, text=True,
                         timeout=900, env=dict(os.environ))
    assert out.returncode == 0, f"the harness died ({out.returncode}): {out.stderr[-3000:]}"
    report = json.loads(out.stdout.strip().splitlines()[-1])
    print(report["counts"])
    assert report["total"] >= 500
    assert not report["problems"], "\n".join(report["problems"][:30])
    assert report["counts"]["worked"] > 50 and report["counts"]["raised"] > 100
