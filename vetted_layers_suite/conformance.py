"""``vetted-layers-conformance``: the main job of ``python -m tools.report``, without a clone.

Usage::

    pip install 'vetted-layers[test]'
    vetted-layers-conformance --impl MODULE              # report in ./report
    vetted-layers-conformance --impl MODULE --out DIR [-- extra pytest args]

Same options, run id and report as ``python -m tools.report`` (it is that job), run on the
suite the wheel carries (``vetted_layers_suite/suite/``: tests, tools, references, adapters,
golden data) from any directory.  ``MODULE`` is looked up in the current directory too, so a
``my_adapter.py`` next to you is found as ``--impl my_adapter``.

The suite's modules import one another by their repository names (``tools``, ``tests``,
``reference``, ``adapters``): this job puts the suite's folder first on ``sys.path`` and on
``PYTHONPATH`` for pytest and its workers, in its own processes only.  In a clone (an editable
install) the suite is the clone's own.  The installed suite writes nothing into site-packages:
JAX's compilation cache and Hypothesis's folder go to ``$XDG_CACHE_HOME/vetted-layers/``
(``~/.cache/vetted-layers/jax`` and ``.../hypothesis``); ``JAX_COMPILATION_CACHE_DIR`` and
``HYPOTHESIS_STORAGE_DIRECTORY`` move them, ``-- --no-jax-cache`` turns JAX's off.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["main", "suite_root"]

PROG = "vetted-layers-conformance"


def _is_suite(root: Path) -> bool:
    return (root / "tools" / "report.py").is_file() and (root / "golden" / "MANIFEST.json").is_file()


def suite_root() -> Path:
    """The folder holding ``tools/``, ``tests/`` and ``golden/``: the wheel's copy, else the clone."""
    here = Path(__file__).resolve().parent
    for root in (here / "suite", here.parent):
        if _is_suite(root):
            return root
    raise RuntimeError(f"{PROG}: no conformance suite next to {here} (expected {here / 'suite'} "
                       "with tools/report.py and golden/MANIFEST.json); reinstall vetted-layers")


def _enter(root: Path, cwd: str) -> None:
    """Make the suite's modules importable by their repository names, here and in child processes."""
    front = [str(root), cwd]
    rest = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p not in front]
    os.environ["PYTHONPATH"] = os.pathsep.join(front + rest)
    sys.path[:0] = front
    if root == Path(__file__).resolve().parent / "suite":  # the wheel's copy: write nothing into site-packages
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vetted-layers"
        os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(cache / "jax"))
        os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", str(cache / "hypothesis"))
        os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
        sys.dont_write_bytecode = True


def main(argv: list[str] | None = None) -> int:
    try:
        root = suite_root()
    except RuntimeError as e:
        print(e, file=sys.stderr)
        return 2
    _enter(root, os.getcwd())
    from tools import report

    return report.main(argv, prog=PROG)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
