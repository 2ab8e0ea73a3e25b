"""The device-specific part of the suite, for a machine with an accelerator (<= 5 minutes).

Usage::

    python -m tools.device_check [--out DIR]

Runs the golden conformance tests (values of every registry family, every
dtype) and the multi-device tests on every device JAX offers, then prints the
cross-device table: per op x dtype, the max ulp against the golden data on
each device side by side, "!" where a device is over its budget, and whether
the devices agree.  It also prints each device's measured subnormal behaviour
(flush-to-zero of results, subnormal inputs read as zero), the usual source of
CPU/GPU differences.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

TEST_FILES = ["tests/test_activations_golden.py", "tests/test_devices.py"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.device_check", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="report/devices", help="folder for report.json / report.md")
    args = ap.parse_args(argv)
    root = Path(__file__).resolve().parent.parent
    files = [f for f in TEST_FILES + sorted(str(p.relative_to(root)) for p in (root / "tests").glob("test_*golden*.py"))
             if (root / f).exists()]
    files = list(dict.fromkeys(files))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "auto", "--devices", "all",
           "--report-dir", args.out, *files]
    print("$", " ".join(cmd), flush=True)
    t = time.perf_counter()
    rc = subprocess.call(cmd, cwd=root)
    from tools import reporting

    data = json.loads((root / args.out / "report.json").read_text())
    for k, v in data["header"].items():
        if k.startswith("subnormals") or k in ("devices", "versions"):
            print(f"{k}: {v}")
    devices, table = reporting.cross_device_table(data["rows"])
    head = ["kind", "case", "dtype"] + devices + ["agreement"]
    tab = [head] + table
    w = [max(len(r[i]) for r in tab) for i in range(len(head))]
    for r in tab:
        print("  ".join(c.ljust(x) for c, x in zip(r, w)).rstrip())
    print(f"pytest exit status {rc}, {time.perf_counter() - t:.0f} s")
    return rc


if __name__ == "__main__":
    sys.exit(main())
