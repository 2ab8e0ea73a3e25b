"""Memory: the float64 temporaries XLA's CPU backend allocates for the vetted layers.

The float32 and bfloat16 layers evaluate in float64; an intermediate that XLA decides to write
out is a float64 array twice the input's size, whose page faults cost more than the arithmetic
at 2**22 elements and above (docs/performance.md).  ``temp_size_in_bytes`` of the compiled
program (``jax.jit(...).lower(x).compile().memory_analysis()``) for a 16 MiB float32 input
(4096 x 1024; NHWC (64, 32, 32, 64) for group_norm, batch_norm and instance_norm), in the forward pass, the
gradient and the training step (value and VJP in one program).  Every temporary is below
``SMALL`` but those listed in ``KNOWN``, with their reason; a change that adds one, or grows a
known one, fails here.  CPU only: buffer assignment is the backend's.  Not covered: float16
(XLA's CPU backend has no native float16 arithmetic and writes out more there), and the
bfloat16 normalizations (their float32 copy of the input, 16 MiB, by design).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

import impl.functional as F

MIB = 1 << 20
SMALL = 1 * MIB  # row statistics and the like: (4096, 1) float64 is 32 KiB
ROWS, WIDTH = 4096, 1024

ACTIVATIONS = ["relu", "relu6", "leaky_relu", "elu", "celu", "selu", "gelu", "silu", "sigmoid", "log_sigmoid", "tanh",
               "softplus", "mish", "softsign", "hard_sigmoid", "hard_swish", "hard_tanh"]
NORMS = {
    "softmax": F.softmax,
    "log_softmax": F.log_softmax,
    "layer_norm": lambda x: F.layer_norm(x, (WIDTH,)),
    "rms_norm": lambda x: F.rms_norm(x, (WIDTH,)),
    "group_norm": lambda x: F.group_norm(x.reshape(64, 32, 32, 64), 4).reshape(x.shape),
    "batch_norm": lambda x: F.batch_norm(x.reshape(64, 32, 32, 64), None, None, training=True)[0].reshape(x.shape),
    "instance_norm": lambda x: F.instance_norm(x.reshape(64, 32, 32, 64)).reshape(x.shape),
}

# (op, mode) -> (MiB of full-size temporaries allowed, why); SMALL more is always allowed
KNOWN = {
    ("gelu", "train"): (32, "value and derivative packed in one 64-bit word, computed by one loop (_computed_once)"),
    ("group_norm", "train"): (32, "the float64 cotangent, which every term of JAX's transposition reads"),
    ("batch_norm", "grad"): (32, "the same transposition"),
    ("batch_norm", "train"): (64, "the same transposition"),
}


def _program(f, mode):
    if mode == "forward":
        return f, 1
    if mode == "grad":
        return jax.grad(lambda x: f(x).astype(jnp.float32).sum()), 1

    def train(x, ct):
        y, vjp = jax.vjp(f, x)
        return y, vjp(ct)
    return train, 2


def _temp_bytes(f, mode, dtype, rows=ROWS):
    fn, nargs = _program(f, mode)
    x = jax.ShapeDtypeStruct((rows, WIDTH), dtype)
    with jax.default_device(jax.devices("cpu")[0]):
        return jax.jit(fn).lower(*([x] * nargs)).compile().memory_analysis().temp_size_in_bytes


CASES = ([(op, getattr(F, op), dt) for op in ACTIVATIONS for dt in ("float32", "bfloat16")]
         + [("gelu_tanh", lambda x: F.gelu(x, approximate=True), dt) for dt in ("float32", "bfloat16")]
         + [(op, f, "float32") for op, f in NORMS.items()])


@pytest.mark.parametrize("mode", ["forward", "grad", "train"])
@pytest.mark.parametrize("op,f,dtype", CASES, ids=[f"{op}-{dt}" for op, _, dt in CASES])
def test_float64_temporaries(op, f, dtype, mode):
    got = _temp_bytes(f, mode, jnp.dtype(dtype))
    known, why = KNOWN.get((op, mode), (0, "no full-size temporary"))
    allowed = known + SMALL / MIB  # the known full-size arrays and small ones
    assert got <= allowed * MIB, (
        f"{op} {mode} ({dtype}, {ROWS}x{WIDTH}): XLA allocates {got / MIB:.1f} MiB of temporaries, "
        f"expected at most {allowed} MiB ({why}); find the buffer with "
        f"jax.jit(...).lower(x).compile().as_text() and docs/performance.md")


def _check_small(got, what, allowed=SMALL, why=""):
    """``got`` bytes of temporaries at most ``allowed``, with a message naming the program."""
    assert got <= allowed, (
        f"{what}: XLA allocates {got / MIB:.1f} MiB of temporaries, expected at most "
        f"{allowed / MIB:.0f} MiB{why}; find the buffer with jax.jit(...).lower(x).compile().as_text()")


# Below 4096 rows XLA's YNNPACK fusions leave the per-row statistics out and the program splits
# (docs/performance.md); a float64 array shared by two of its parts is then written out.  The
# forward passes of the row normalizations write none at 1024 rows of 1024 (8 MiB per float64
# array): rms_norm did, before its sum and output took their own copies of x (_rms_value).
FEW_ROWS = 1024


@pytest.mark.parametrize("op", ["layer_norm", "rms_norm"])
def test_forward_temporaries_below_4096_rows(op):
    got = _temp_bytes(NORMS[op], "forward", jnp.dtype("float32"), rows=FEW_ROWS)
    _check_small(got, f"{op} forward (float32, {FEW_ROWS}x{WIDTH})")


@pytest.mark.parametrize("rows", [256, FEW_ROWS, 2048])
def test_rms_norm_gradient_below_4096_rows(rows):
    """rms_norm's gradient writes no float64 array below 4096 rows: its tangent's ``x r^2``
    term is written so that the reduction of JAX's transposition shares no full-size
    expression with the cotangent's other terms (``_rms_op_jvp``); before, float64 ``x`` was
    written out (8 MiB at 1024 rows).  The training step (an arbitrary cotangent) still
    writes the float64 cotangent, which every term of the transposition reads."""
    got = _temp_bytes(NORMS["rms_norm"], "grad", jnp.dtype("float32"), rows=rows)
    _check_small(got, f"rms_norm grad (float32, {rows}x{WIDTH})")


@pytest.mark.parametrize("rows", [256, FEW_ROWS, 2048])
def test_layer_norm_derivative_below_4096_rows(rows):
    """layer_norm's gradient writes no float64 array below 4096 rows, and its training step one
    (the float64 cotangent, which every term of JAX's transposition reads): the tangent's
    ``xhat`` term is written so that its reduction shares no full-size expression with the
    other terms (``_centred_tangent``'s ``distinct``).  Before: one and two arrays."""
    one = 8 * rows * WIDTH
    got = _temp_bytes(NORMS["layer_norm"], "grad", jnp.dtype("float32"), rows=rows)
    _check_small(got, f"layer_norm grad (float32, {rows}x{WIDTH})")
    got = _temp_bytes(NORMS["layer_norm"], "train", jnp.dtype("float32"), rows=rows)
    _check_small(got, f"layer_norm train (float32, {rows}x{WIDTH})", one + SMALL,
                 f" (one float64 array, the cotangent, and {SMALL / MIB:.0f} MiB)")


@pytest.mark.parametrize("op", ["layer_norm", "rms_norm"])
def test_eps0_forward_writes_no_float64_array(op):
    """With ``eps = 0`` the value keeps its own copies of x (``_fresh``); only its derivatives
    widen x once (``_differentiated_once``), so the forward pass alone writes no float64 ``x``
    (64 MiB for layer_norm when the value was traced with one widening too)."""
    f = (lambda z: F.layer_norm(z, WIDTH, eps=0.0)) if op == "layer_norm" else (lambda z: F.rms_norm(z, WIDTH, eps=0.0))
    got = _temp_bytes(f, "forward", jnp.dtype("float32"))
    _check_small(got, f"{op} eps=0 forward (float32, {ROWS}x{WIDTH})")


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_softmax_fast_path_below_4096_rows(log, dtype):
    """The fast path alone (``lax.cond``'s edge-row branch, by blocks of rows, has a few arrays
    of one block, and a 16-bit output of its own) writes no float64 array at 1024 rows of 1024.
    log_softmax wrote 32 MiB there (``x - M``, ``|x - M|`` and two broadcast constants, shared
    by its sum of exponentials and its tie count) before the count took expressions of its own
    (``_tie_count``)."""
    from impl import _reductions as R

    def fast(x):
        with jax.enable_x64(True):
            return R._softmax_fast(x, -1, log, x.dtype)
    got = _temp_bytes(fast, "forward", jnp.dtype(dtype), rows=FEW_ROWS)
    _check_small(got, f"{'log_softmax' if log else 'softmax'} fast path ({dtype}, {FEW_ROWS}x{WIDTH})")


def test_log_softmax_training_step_below_4096_rows():
    """log_softmax's training step at 2048 rows of 1024 (2**21 elements: its derivative
    recomputes p) writes one full-size float64 array outside ``lax.cond``'s edge-row branch
    (the float64 cotangent times the row's 0-or-1 factor, read by a row sum and by the output),
    counted in the compiled program's entry computation.  Before the sum ``<p, dx>`` recomputed
    p from an expression of its own (``_softmax_op_jvp``) XLA wrote p out too: two arrays."""
    import re

    rows = 2048
    train, _ = _program(F.log_softmax, "train")
    x = jax.ShapeDtypeStruct((rows, WIDTH), jnp.float32)
    with jax.default_device(jax.devices("cpu")[0]):
        text = jax.jit(train).lower(x, x).compile().as_text()
    entry = text[text.index("ENTRY"):]
    entry = entry[: entry.index("\n}")]
    full = re.findall(rf"^\s*(?:ROOT )?%(\S+) = f64\[{rows},{WIDTH}\]", entry, re.M)
    assert len(full) <= 1, (
        f"log_softmax train (float32, {rows}x{WIDTH}): the entry computation writes {len(full)} "
        f"full-size float64 arrays ({full}), expected at most 1 (the cotangent)")
