"""softmax in a training step: the value that ``jax.vjp`` returns is the forward value, bit for
bit, and the higher derivatives stay closed forms.

Below ``_SMALL_P_BYTES`` of float64 the derivative stores ``p``, the softmax in float64, and
softmax's value in that step is ``p`` rounded (``_softmax_pair``) instead of a second
evaluation; otherwise the value is evaluated apart and ``p`` recomputed.  The shapes: (16, 33)
stores ``p``; (1025, 1024) recomputes it below 4096 rows; (4097, 256) recomputes it from 4096
rows.  All must give the bits of ``impl.functional.softmax(x)``, edge rows (``+-inf`` entries,
all ``-inf``, NaN) included.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import impl.functional as F

from .helpers import bit_patterns

OPS = {"softmax": F.softmax, "log_softmax": F.log_softmax}


def _rows(rows, n, seed=0):
    """float64 logits with an edge row of each kind at the top: a +inf entry, two +inf entries,
    -inf entries, all -inf, a NaN entry, a tie of the maximum, and far-apart logits."""
    x = np.random.default_rng(seed).standard_normal((rows, n)) * 4
    x[0, 1] = np.inf
    x[1, [0, 3]] = np.inf
    x[2, ::3] = -np.inf
    x[3] = -np.inf
    x[4, 2] = np.nan
    x[5, [1, 4]] = x[5].max() + 1
    x[6] = np.linspace(-800, 0, n)
    return x



@pytest.mark.parametrize("op", sorted(OPS))
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize("shape", [(16, 33), (1025, 1024), (4097, 256)],
                         ids=["stored-p", "large-few-rows", "recomputed-p"])
@pytest.mark.parametrize("rows", ["edge", "finite"])
def test_training_value_is_the_forward_value(op, dtype, shape, rows):
    """``edge``: the edge rows send the whole array down the float64 path (``lax.cond``);
    ``finite``: every row's maximum is finite, the fast path."""
    if dtype == "float64" and shape[0] > 16:
        pytest.skip("float64 inputs always store p")
    f = OPS[op]
    with jax.enable_x64(dtype == "float64"):
        xs = _rows(*shape) if rows == "edge" else np.random.default_rng(7).standard_normal(shape) * 4
        x = jnp.asarray(xs, dtype)
        ct = jnp.asarray(np.random.default_rng(1).standard_normal(shape), dtype)
        want = jax.jit(f)(x)
        got, dx = jax.jit(lambda x, c: (lambda y, vjp: (y, vjp(c)[0]))(*jax.vjp(f, x)))(x, ct)
        bad = np.flatnonzero(bit_patterns(got) != bit_patterns(want))
        assert bad.size == 0, (
            f"{op} {dtype} {shape}: jax.vjp's value differs from the forward value at flat indices "
            f"{bad[:5].tolist()}: got {np.asarray(got).ravel()[bad[:5]].tolist()}, "
            f"expected {np.asarray(want).ravel()[bad[:5]].tolist()}")
        assert dx.dtype == x.dtype and dx.shape == x.shape


@pytest.mark.parametrize("op", sorted(OPS))
def test_second_and_third_derivatives_in_float64(op):
    """Hessian and third derivative of ``sum(w * op(x))`` in float64 against ``jax.nn``'s in
    float64 (autodiff of the textbook formula, an implementation apart).  Both are float64
    evaluations of the same closed forms; the bound, ``2**-44`` of the largest entry, leaves
    room for their float64 roundings (a few ``2**-53`` each, summed over rows of 7) and would
    catch any derivative that is not the closed form (a float32 rounding is ``2**-24``)."""
    rng = np.random.default_rng(2)
    with jax.enable_x64(True):
        x = jnp.asarray(rng.standard_normal((3, 7)) * 3)
        w = jnp.asarray(rng.standard_normal((3, 7)))
        ours = lambda v: jnp.sum(OPS[op](v) * w)
        peer = lambda v: jnp.sum(getattr(jax.nn, op)(v) * w)
        for order, d in ((2, jax.hessian), (3, lambda g: jax.jacfwd(jax.hessian(g)))):
            got, want = np.asarray(d(ours)(x)), np.asarray(d(peer)(x))
            err = np.max(np.abs(got - want)) / np.max(np.abs(want))
            assert err <= 2.0**-44, f"{op}: derivative of order {order} off by {err:.3g} of its largest entry"


@pytest.mark.parametrize("op", sorted(OPS))
def test_higher_derivatives_of_float32_with_x64_off(op):
    """With the x64 flag off (JAX's default), the Hessian and the third derivative of float32
    ``sum(w * op(x))`` exist (they raised a dtype error before the derivative's row mask stopped
    differentiating a float64 maximum) and the Hessian is ``jax.nn``'s float64 one rounded once:
    each entry a float64 evaluation rounded to float32, so within ``2**-23`` of the largest."""
    rng = np.random.default_rng(8)
    x = jnp.asarray(rng.standard_normal((3, 7)) * 3, jnp.float32)
    w = jnp.asarray(rng.standard_normal((3, 7)), jnp.float32)
    ours = lambda v: jnp.sum(OPS[op](v) * w)
    got = np.asarray(jax.hessian(ours)(x), np.float64)
    third = jax.jacfwd(jax.hessian(ours))(x)
    assert third.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(third)))
    with jax.enable_x64(True):
        want = np.asarray(jax.hessian(lambda v: jnp.sum(getattr(jax.nn, op)(v) * w.astype(jnp.float64)))(
            x.astype(jnp.float64)))
    err = np.max(np.abs(got - want)) / np.max(np.abs(want))
    assert err <= 2.0**-23, f"{op}: float32 Hessian off by {err:.3g} of its largest entry"


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_few_rows_kernel_agrees_with_the_many_rows_path(dtype):
    """Below 4096 rows softmax's quotient takes ``_fast64.exp`` (XLA's float64 exp is slow in
    that loop fusion); from 4096 rows it keeps XLA's exp.  Both are within ``2**-50`` of the
    exact value before one rounding, so each row must round to the same bits whichever path
    it takes (a disagreement would need an exact value within ``2**-50`` of a rounding
    boundary: about ``2**-25`` a value), and the derivatives, formed from the float64 ``p``,
    too: 64 rows of 512 alone (the few-rows path) against the same rows on top of 4096 (the
    many-rows path), logits of spread 30 with ``-inf`` entries, entries 750-1500 below the
    maximum (``p`` below the smallest normal float64, 0 in both) and entries 708-708.39 below it
    (``p`` a normal float64 in both, between the kernel's clamp and the smallest normal)."""
    rng = np.random.default_rng(11)
    xs = rng.standard_normal((4096, 512)) * 30
    xs[::5, 7] = -np.inf
    xs[::3, 9] = xs[::3].max(axis=1) - rng.uniform(750, 1500, xs[::3].shape[0])
    xs[::2, 11] = xs[::2].max(axis=1) - rng.uniform(708.0, 708.39, xs[::2].shape[0])
    x = jnp.asarray(xs, dtype)
    ct = jnp.asarray(rng.standard_normal(xs.shape), dtype)

    def value_and_grad(x, c):
        y, vjp = jax.vjp(F.softmax, x)
        return y, vjp(c)[0], jax.grad(lambda x: (F.softmax(x) * c).astype(jnp.float32).sum())(x)

    few = jax.jit(value_and_grad)(x[:64], ct[:64])
    many = jax.jit(value_and_grad)(x, ct)
    for what, a, b in zip(("value", "vjp", "grad"), few, many):
        bad = np.flatnonzero(bit_patterns(a) != bit_patterns(b[:64]))
        assert bad.size == 0, (
            f"softmax {dtype} {what}: 64 rows alone differ from the same rows among 4096 at flat indices "
            f"{bad[:5].tolist()}: got {np.asarray(a).ravel()[bad[:5]].tolist()}, the many-rows path gives "
            f"{np.asarray(b[:64]).ravel()[bad[:5]].tolist()}")


@pytest.mark.parametrize("op", sorted(OPS))
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize("shape", [(16, 33), (1025, 1024), (300, 4096), (4097, 256)],
                         ids=["stored-p", "few-rows", "few-wide-rows", "many-rows"])
@pytest.mark.parametrize("edge", [False, True], ids=["fast-value", "edge-value"])
@pytest.mark.parametrize("column", [2, -1], ids=["nan-inside", "nan-last"])
def test_a_nan_row_is_nan_in_value_and_derivative(op, dtype, shape, edge, column):
    """A row with a NaN entry is NaN throughout, in the value, ``jax.vjp``'s cotangent and
    ``jax.grad``, and the other rows are not.  XLA's CPU reductions by maximum skip a NaN from
    4096 elements (YNNPACK): the row maximum is the largest other entry, or ``-inf`` when the
    NaN is the row's last entry.  log_softmax's value and both derivatives came out finite on
    such a row, or NaN at the NaN entry alone; with the NaN last, the row read as all ``-inf``
    and both ops gave the uniform ``1/n`` (``log n``), float64 included.  ``edge``: a ``+inf``
    entry elsewhere sends the value down the edge-row path."""
    f = OPS[op]
    xs = np.random.default_rng(3).standard_normal(shape) * 4
    xs[4, column] = np.nan
    if edge:
        xs[6, 1] = np.inf
    with jax.enable_x64(dtype == "float64"):
        x = jnp.asarray(xs, dtype)
        ct = jnp.asarray(np.random.default_rng(4).standard_normal(shape), dtype)
        y, vjp = jax.vjp(f, x)
        g = jax.grad(lambda x: (f(x) * ct).astype(jnp.float32).sum())(x)
        results = (("value", y), ("vjp", vjp(ct)[0]), ("grad", g))
    for what, a in results:
        a = np.asarray(a, np.float32)
        finite_there = np.flatnonzero(~np.isnan(a[4]))
        assert finite_there.size == 0, (f"{op} {dtype} {shape} {what}: the row with a NaN entry (row 4) is not NaN "
                                        f"at columns {finite_there[:5].tolist()}: {a[4, finite_there[:5]].tolist()}")
        others = np.flatnonzero(np.isnan(np.delete(a, 4, axis=0)).any(axis=1))
        assert others.size == 0, f"{op} {dtype} {shape} {what}: NaN in rows without a NaN entry: {others[:5].tolist()}"


@pytest.mark.parametrize("op", sorted(OPS))
@pytest.mark.parametrize("dtype", ["bfloat16", "float32", "float64"])
@pytest.mark.parametrize("shape,axis", [((2051, 40), -1), ((300, 1000), 0), ((5, 30000), -1)],
                         ids=["rows-padded", "axis0", "wide-rows"])
def test_edge_rows_by_blocks_agree_with_rows_alone(op, dtype, shape, axis):
    """An input with an edge row (``+inf``, all ``-inf``, NaN) takes the edge-row path, which
    evaluates blocks of rows in turn once the input passes twice ``_EDGE_BLOCK_ELEMENTS``
    (``_by_row_blocks``, its rows padded up to whole blocks).  Each row must come out as it does
    evaluated alone (a small input, one evaluation), along either axis: a mix-up of rows
    between blocks, or padding left in the result, fails here.  float64 runs with x64 on and
    allows the last bits of its sums' order."""
    from impl import _reductions as R

    f = OPS[op]
    xs = np.random.default_rng(5).standard_normal(shape) * 6
    xs = xs if axis == -1 else xs.T.copy()  # rows along the axis
    xs[1, 3], xs[2, :], xs[-1, 0] = np.inf, -np.inf, np.nan
    xs[-2, 1] = xs[-2, 2] = np.inf
    rows = xs if axis == -1 else xs.T
    assert rows.size > 2 * R._EDGE_BLOCK_ELEMENTS
    with jax.enable_x64(dtype == "float64"):
        whole = np.asarray(jax.jit(f, static_argnames="axis")(jnp.asarray(rows, dtype), axis=axis))
        whole = whole if axis == -1 else whole.T
        picks = [0, 1, 2, 3, xs.shape[0] // 2, xs.shape[0] - 2, xs.shape[0] - 1]
        for i in picks:
            alone = np.asarray(f(jnp.asarray(xs[i:i + 1], dtype)))[0]
            if dtype == "float64":
                # float64 sums in the order XLA picks for the shape: a row alone and a block of
                # rows may differ in the last bits (measured on these cases: at most 2.0 ulp, on
                # log_softmax's rows); a row from another block differs by far more
                with np.errstate(invalid="ignore"):
                    ulps = np.abs(alone - whole[i]) / np.spacing(np.abs(alone))
                same = (bit_patterns(alone) == bit_patterns(whole[i])) | (ulps <= 2)
                bad = np.flatnonzero(~same)
            else:
                bad = np.flatnonzero(bit_patterns(alone) != bit_patterns(whole[i]))
            assert bad.size == 0, (
                f"{op} {dtype} {shape} axis={axis}: row {i} among all rows differs from the row alone at "
                f"{bad[:5].tolist()}: {whole[i][bad[:5]].tolist()} against {alone[bad[:5]].tolist()}")
