"""Budget profiles: how strictly the implementation under test is judged (``pytest --profile NAME``).

The registry's budgets (``tools/registry/``) are this project's: correctly rounded where the
project claims it, a derived bound elsewhere.  Another library may aim lower on purpose; a
profile restates every measured case's budget in the terms it aims at, and the report names the
profile on its first line.  A profile never changes what is measured (the same inputs, the same
exact results, the same figures), only the line a figure is held to.

``strict`` (the default; the only profile under which the registry's known failures of
impl.functional are expected failures)
    The registry's budgets as they are, each with its derivation in the registry: elementwise
    activations <= 1 ulp and >= 99.9 % correctly rounded in float32, correctly rounded in
    bfloat16 and float16, <= 1 ulp and >= 99 % in float64; the normalizations also <= 4 ulp(1.0) absolute
    (``tools/registry/reductions.py``).

``faithful`` (anchor: faithful rounding as IEEE 754-2019 clause 2.1 and the CORE-MATH /
CRlibm literature use it: the result is one of the two floats around the exact value)
    Every ulp budget below 1 ulp becomes 1 ulp (|error| < 1 ulp is faithful; 1 ulp admits the
    neighbour at an exact float), and no share of correctly rounded results is required.  A
    budget already above 1 ulp (a derived bound, such as the normalizations' budgets in ulps of
    the output) is one the project itself does not claim to be faithful; it stays,
    as do the absolute budgets in ulp(1.0), which faithful rounding of an output near 0 cannot
    replace.

``torch`` (anchor: ``torch.testing.assert_close``'s default tolerances, the field's most used
comparison; ``torch/testing/_comparison.py``)
    An element passes when ``|got - exact| <= atol + rtol * |exact|`` with the defaults per
    dtype: float32 ``rtol 1.3e-6, atol 1e-5``; float64 ``1e-7, 1e-7``; float16 ``1e-3, 1e-5``;
    bfloat16 ``1.6e-2, 1e-5``.  Here ``exact`` is the exact result (assert_close compares two
    implementations; the exact value is the better expected).  In ulps at the bottom of a binade
    (``rtol / 2**(1 - p)``), ``rtol`` is ~11 ulp in float32 (1.3e-6 / 2**-23), ~4.5e8 ulp in
    float64 (1e-7 / 2**-52), ~1 ulp in float16 (1e-3 / 2**-10) and ~2 ulp in bfloat16
    (1.6e-2 / 2**-7); ``atol`` passes any error below 1e-5 whatever the result's size.
    A row's figure is then the largest ``|got - exact| / (atol + rtol |exact|)`` (<= 1 passes);
    NaN/inf mismatches fail as in every profile (assert_close's ``equal_nan=False`` default
    treats a NaN as a mismatch too).

Profiles apply to the measured rows (values, derivatives, parameter sweeps, softmax and
normalization outputs and running statistics); special values, conventions, VJPs of the
reductions and the API and dtype checks are the same in every profile.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

__all__ = ["PROFILES", "DEFAULT", "ProfileBudget", "apply", "active", "set_active", "describe",
           "tolerance_fraction"]

DEFAULT = "strict"

# torch.testing.assert_close defaults (torch/testing/_comparison.py, _DTYPE_PRECISIONS; float32's
# rtol is 1.3e-6 and atol 1e-5, the defaults for every dtype not in that table)
TORCH_TOLERANCES = {"float32": (1.3e-6, 1e-5), "float64": (1e-7, 1e-7), "float16": (1e-3, 1e-5),
                    "bfloat16": (1.6e-2, 1e-5)}

PROFILES = {
    "strict": "the registry's budgets (correctly rounded where the project claims it), as derived in tools/registry/",
    "faithful": "faithful rounding: <= 1 ulp (budgets above 1 ulp kept), no correct-rounding share",
    "torch": "torch.testing.assert_close defaults: |got - exact| <= atol + rtol |exact| "
             "(float32 1e-5 + 1.3e-6, float64 1e-7 + 1e-7, float16 1e-5 + 1e-3, bfloat16 1e-5 + 1.6e-2)",
}

_active = DEFAULT


@dataclasses.dataclass(frozen=True)
class ProfileBudget:
    """A registry budget restated by a profile.  ``atol``/``rtol``: an element tolerance
    ``atol + rtol |exact|`` (the ``torch`` profile), judged as a fraction of it."""

    max_ulp: float
    min_cr: float
    why: str
    known_failure: str = ""
    max_abs_ulps: float | None = None
    atol: float | None = None
    rtol: float | None = None
    profile: str = DEFAULT

    @property
    def text(self) -> str:
        return f"|got - exact| <= {self.atol:g} + {self.rtol:g} |exact| ({self.profile})"


def set_active(name: str) -> None:
    """Select the profile of this process (``--profile``); an unknown name is an error naming the known ones."""
    global _active
    if name not in PROFILES:
        raise ValueError(f"--profile {name!r}: unknown profile; use one of {', '.join(PROFILES)} "
                         "(see tools/profiles.py for their derivations)")
    _active = name


def active() -> str:
    return _active


def describe(name: str | None = None) -> str:
    name = name or _active
    return f"{name}: {PROFILES[name]}"


def apply(budget, dtype: str, name: str | None = None):
    """``budget`` (a registry budget of one case in ``dtype``) as the profile states it; under
    ``strict`` the registry's budget itself."""
    name = name or _active
    if name == "strict":
        return budget
    abs_ulps = getattr(budget, "max_abs_ulps", None)
    if name == "faithful":
        mx = budget.max_ulp if math.isinf(budget.max_ulp) or budget.max_ulp > 1.0 else 1.0
        return ProfileBudget(mx, 0.0, f"faithful profile (registry: {budget.why})", max_abs_ulps=abs_ulps,
                             profile=name)
    rtol, atol = TORCH_TOLERANCES[dtype]
    return ProfileBudget(math.inf, 0.0, PROFILES[name], atol=atol, rtol=rtol, profile=name)


def tolerance_fraction(got, exact, codes, budget) -> np.ndarray:
    """``|got - exact| / (atol + rtol |exact|)`` per element (0 where ``codes`` marks a
    nonfinite element: those are NaN/inf matches or mismatches, counted apart)."""
    got = np.asarray(got, dtype=np.float64)
    exact = np.asarray(exact, dtype=np.float64)
    with np.errstate(all="ignore"):
        f = np.abs(got - exact) / (budget.atol + budget.rtol * np.abs(exact))
    return np.where(np.asarray(codes) == 2, 0.0, f)
