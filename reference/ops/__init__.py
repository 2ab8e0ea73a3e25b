"""One module per op: every reference of an op in one file, ``reference/ops/<op>.py``.

A module here is named after its op and defines

* ``value(x, **params)``: the exact reference on the exact input, as the functions of
  ``reference.activations`` (a Python float, a ``fractions.Fraction`` or an ``mpf`` in the
  caller's mpmath context);
* ``d1(x, **params)`` and, for a golden second derivative, ``d2``: the exact derivatives, as
  ``reference.derivatives``' ``d_<op>`` and ``d2_<op>``;
* ``float64(x, **params)``: the independent float64 formula (numpy, sharing no code with
  ``value``), as ``reference.float64.<op>``, with ``FLOAT64_BOUND = (bound, why)`` when its
  relative error bound is not the default of ``reference.float64.relative_bound``;
* ``float64_d1`` (and ``float64_d2``): the float64 derivative formulas returning
  ``(y, amp, exact)``, as ``reference.float64_derivatives``' ``<op>`` and ``<op>2``.

(The second oracle, ``tools/mpfr_oracle.py``, shares no code with ``reference/`` by design: an
op's MPFR formulas are written there.)

The shared modules take them under their usual names (``reference.activations.<op>``,
``reference.derivatives.d_<op>``, ...), so every consumer finds such an op as it finds the
others.  The ops older than this folder are still written in those modules.  A sweep record's
reference hash covers an op's own module here and none of the others (``tools.sweep_check``).
"""

from __future__ import annotations

import functools
import importlib
import pkgutil

__all__ = ["modules", "provided"]


@functools.lru_cache(maxsize=None)
def modules() -> dict:
    """``{op: module}`` of every module in this folder, in name order."""
    names = sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
    return {n: importlib.import_module(f"{__name__}.{n}") for n in names}


def provided(attribute: str) -> dict:
    """``{op: function}`` of the modules that define ``attribute``."""
    return {n: getattr(m, attribute) for n, m in modules().items() if hasattr(m, attribute)}
