"""Shared test helpers: running an op on a device, and failure messages that explain themselves."""

from __future__ import annotations

import pytest
import numpy as np

from tools import calls
from tools import devices as D
from tools import metric, profiles, reporting
from tools.calls import x64_for  # noqa: F401  (re-exported for the tests)
from tools.dtypes import NP_DTYPES

JNP_DTYPES = NP_DTYPES  # the same table (numpy types serve jnp.asarray): tools/dtypes.py


def case_param(case, dtype, raises=None):
    """``pytest.param(case, dtype)`` with the id ``<case id>-<dtype>``; a registry known failure
    becomes the ``known_failure`` mark (xfail(strict=True) for impl.functional and its variants,
    see conftest; a plain case for any other implementation)."""
    b = case.budgets[dtype]
    kw = {} if raises is None else {"raises": raises}
    marks = [pytest.mark.known_failure(b.known_failure, **kw)] if b.known_failure else []
    return pytest.param(case, dtype, id=f"{case.id}-{dtype}", marks=marks)


def run_op(fn, x: np.ndarray, dtype_name: str, device, **kwargs) -> np.ndarray:
    """``fn(x, **kwargs)`` with ``x`` committed to ``device`` (``tools.calls.run``); the output as numpy."""
    return calls.run(fn, None, {"x": x}, kwargs, dtype_name, device)["y"]


def bit_patterns(a):
    """``a`` as unsigned integers of its width: equal patterns, equal bits (signed zeros, NaN payloads)."""
    a = np.asarray(a)
    return a.view({2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize])


def _hexbits(v, dtype_name):
    a = np.asarray([v], dtype=NP_DTYPES[dtype_name])
    return "0x" + bit_patterns(a)[0].tobytes()[::-1].hex()


def mismatch_message(title, x, got, rounded, err, codes, stats, budget, dtype_name, reproduce, k=5, frac=None):
    """Expected, got, for which inputs, how many, and the command that reproduces it."""
    lines = [f"{title}:"]
    a = np.where(codes == 0, np.abs(err), -1.0)
    if frac is not None:  # a profile's element tolerance (atol + rtol |exact|)
        over = np.flatnonzero(frac > 1.0)
        if over.size:
            lines.append(f"  {over.size} of {stats.n} results exceed {budget.text} (max {float(frac.max()):.4g} of "
                         "it); worst first:")
        order = over[np.argsort(-frac[over])]
    else:
        over = np.flatnonzero(a > budget.max_ulp)
        if over.size:
            lines.append(f"  {over.size} of {stats.n_normal} normal-range results exceed {budget.max_ulp} ulp "
                         f"(max {stats.max_ulp:.4g} ulp); worst first:")
        order = over[np.argsort(-a[over])]
    for i in order[:k]:
        lines.append(f"    x = {float(x[i])!r} ({_hexbits(x[i], dtype_name)}): got {float(got[i])!r}, "
                     f"correctly rounded {float(rounded[i])!r}, error {err[i]:+.4g} ulp")
    if stats.pct_cr < budget.min_cr:
        lines.append(f"  only {stats.pct_cr:.4f}% correctly rounded, budget >= {budget.min_cr}%")
        bad = np.flatnonzero((codes == 0) & ~((got.astype(np.float64) == rounded)
                                              & (np.signbit(got.astype(np.float64)) == np.signbit(rounded))))
        for i in bad[:k]:
            lines.append(f"    x = {float(x[i])!r}: got {float(got[i])!r}, correctly rounded {float(rounded[i])!r}, "
                         f"error {err[i]:+.4g} ulp")
    if stats.n_nonfinite_mismatch:
        nf = np.flatnonzero((codes == 2) & ~(
            (np.isnan(rounded) & np.isnan(got.astype(np.float64))) | (np.isinf(rounded) & (got == rounded))))
        lines.append(f"  {stats.n_nonfinite_mismatch} nan/inf mismatches:")
        for i in nf[:k]:
            lines.append(f"    x = {float(x[i])!r}: got {float(got[i])!r}, expected {float(rounded[i])!r}")
    lines.append(f"  reproduce: {reproduce}")
    return "\n".join(lines)


def budget_for(case, dtype_name):
    """The case's registry budget in ``dtype_name`` as the active profile (``--profile``) states it."""
    return profiles.apply(case.budgets[dtype_name], dtype_name)


def check_against(label, x, got, rounded, residual, dtype_name, budget, reproduce, *, kind, case, device, source):
    """Measure ``got`` against the reference and judge it, once: ``(row, message or None, class codes)``.

    ``row`` is the report's :class:`tools.verdict.Verdict` (``row.passed`` is the verdict the test
    asserts); ``budget`` may be a profile's (``budget_for``): an element tolerance is then judged
    element by element."""
    stats, err, codes = metric.evaluate(got, rounded, residual, dtype_name, budget.max_ulp, x)
    frac, extra = None, {}
    if getattr(budget, "rtol", None) is not None:
        exact = metric.exact_values(rounded, residual, dtype_name)
        frac = profiles.tolerance_fraction(got, exact, codes, budget)
        extra = {"bound_fraction": float(frac.max()) if frac.size else 0.0, "budget_text": budget.text}
        failed = bool((frac > 1.0).any()) or stats.n_nonfinite_mismatch > 0
    else:
        failed = stats.n_over > 0 or stats.pct_cr < budget.min_cr or stats.n_nonfinite_mismatch > 0
    msg = None
    if failed:
        msg = mismatch_message(label, x, got, rounded, err, codes, stats, budget, dtype_name, reproduce, frac=frac)
    worst = float(np.asarray(x)[stats.worst_index]) if stats.worst_index >= 0 else None
    row = reporting.row_from_stats(kind, case, dtype_name, device, source, stats, budget, worst, extra=extra,
                                   message=msg)
    return row, msg, codes


def check_subnormal_class(label, x, got, rounded, sub, device, dtype):
    """Subnormal results/inputs: correctly rounded, or what a device that is
    measured to flush (FTZ) or to read subnormal inputs as zero (DAZ) gives:
    a zero, or the result at a zero input of the same sign."""
    if not sub.any():
        return
    beh = D.subnormal_behaviour(device)["float64" if dtype == "float64" else "float32"]
    ok = (got == rounded) & (np.signbit(got) == np.signbit(rounded))
    if beh["flushes_results"]:
        ok |= got == 0
    if beh["inputs_as_zero"]:
        x64 = np.asarray(x).astype(np.float64)
        for zero in (0.0, -0.0):
            at = np.flatnonzero((x64 == 0) & (np.signbit(x64) == np.signbit(zero)))
            if at.size:
                ok |= (np.signbit(x64) == np.signbit(zero)) & (got == rounded[at[0]])
    bad = sub & ~ok
    assert not bad.any(), (
        f"{label}: {int(bad.sum())} subnormal-class results are neither correctly rounded nor what "
        f"the device's measured flushing gives ({beh}); e.g. x = {float(np.asarray(x)[bad][0])!r}: "
        f"got {got[bad][0]!r}, correctly rounded {rounded[bad][0]!r}")
