"""Check sigmoid, softplus', log_sigmoid' and silu' of ``impl.functional`` on every float32 input
with ``2**-30 <= |t| < 2**-11`` (both signs: 318,767,104 inputs), where ``_near_half`` decides their
ties next to 0 (``impl/_activations.py``).

How: each input's result is compared with ``h = 1/2 + k t - c t**3`` (k = 1/4, c = 1/48 for
sigmoid; k = 1/2, c = 1/12 for silu'), evaluated in float64.  The series' next term is below
``|t|**5/80 < 2**-61`` and the float64 evaluation's error below ``2**-52``, so ``h`` is within
``2**-51`` of the exact value, under ``2**-25`` of the result's ulp (``2**-26`` below 1/2); a result
whose distance from ``h`` is below ``1/2 - 10**-6`` of the float32 spacing on ``h``'s side is
therefore correctly rounded.  The others (the inputs next to a midpoint) are decided by
``reference.correctly_rounded`` (``reference.activations.sigmoid``, ``reference.derivatives.d_silu``).
softplus' must give sigmoid's
bits and log_sigmoid'(-t) too (the same kernel).

Usage: ``python -m tools.check_near_half`` (a few minutes; memory per chunk of
``2**22`` inputs).  Exit status 1 and the first misses printed when any input is not correctly
rounded.
"""

from __future__ import annotations

import sys
import time

import numpy as np

__all__ = ["main"]

_LO, _HI = 2.0 ** -30, 2.0 ** -11
_CHUNK = 1 << 22


def _correct(name, t, got):
    """``got`` is the correctly rounded float32 of the op at ``t`` (the project's mpmath references)."""
    from reference import FORMATS, correctly_rounded
    from reference import activations as R
    from reference import derivatives as RD

    ref = R.sigmoid if name == "sigmoid" else RD.d_silu
    return np.float32(correctly_rounded(ref, float(t), FORMATS["float32"])[0]).view(np.uint32) == got.view(np.uint32)


def main(argv=None):
    import jax
    import jax.numpy as jnp

    import impl.functional as F

    grad = lambda f: jax.jit(jax.vmap(jax.grad(f)))
    sigmoid, d_softplus, d_log_sigmoid, d_silu = (jax.jit(F.sigmoid), grad(F.softplus),
                                                  grad(F.log_sigmoid), grad(F.silu))
    lo = np.float32(_LO).view(np.uint32)
    hi = np.float32(_HI).view(np.uint32)
    start, n_in, n_mp, misses = time.time(), 0, 0, []
    for sign in (1.0, -1.0):
        for a in range(int(lo), int(hi), _CHUNK):
            bits = np.arange(a, min(a + _CHUNK, int(hi)), dtype=np.uint32)
            x = (sign * bits.view(np.float32)).astype(np.float32)
            xj = jnp.asarray(x)
            outs = {"sigmoid": np.asarray(sigmoid(xj)), "silu'": np.asarray(d_silu(xj))}
            same = (np.array_equal(np.asarray(d_softplus(xj)).view(np.uint32), outs["sigmoid"].view(np.uint32))
                    and np.array_equal(np.asarray(d_log_sigmoid(-xj)).view(np.uint32), outs["sigmoid"].view(np.uint32)))
            if not same:
                misses.append(("softplus'/log_sigmoid'", float(x[0]), "not sigmoid's bits in this chunk"))
            t = x.astype(np.float64)
            for name, k, c in (("sigmoid", 0.25, 1.0 / 48), ("silu'", 0.5, 1.0 / 12)):
                got = outs[name]
                h = 0.5 + k * t - c * t ** 3
                g = got.astype(np.float64)
                # the spacing on h's side of the result (below 1/2 it halves)
                up = np.nextafter(got, np.float32(1)).astype(np.float64) - g
                down = g - np.nextafter(got, np.float32(0)).astype(np.float64)
                near = np.nonzero(np.abs(h - g) > (0.5 - 1e-6) * np.where(h > g, up, down))[0]
                n_mp += near.size
                for i in near:
                    if not _correct(name, x[i], got[i]):
                        misses.append((name, float(x[i]), float(got[i])))
            n_in += x.size
            print(f"\r{n_in:,} inputs, {n_mp:,} decided by mpmath, {len(misses)} misses, "
                  f"{time.time() - start:.0f} s", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    print(f"{n_in:,} float32 inputs with 2**-30 <= |t| < 2**-11: {n_mp:,} decided by mpmath, "
          f"{len(misses)} not correctly rounded")
    for m in misses[:20]:
        print("  miss:", m)
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
