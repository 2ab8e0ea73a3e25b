"""The tutorial runs as written with impl, its printed statistics are right, and its model trains."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import impl

# runs the whole tutorial (left out of --quick); one xdist worker runs all of this module's
# tests, so the tutorial's module fixture runs once, not once per worker (25 s each)
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("tutorial")]

ROOT = Path(__file__).resolve().parent.parent
TUTORIAL = ROOT / "examples" / "tutorial.py"


@pytest.fixture(scope="module")
def tutorial_output(tmp_path_factory):
    plots = tmp_path_factory.mktemp("plots")
    if not TUTORIAL.exists():
        pytest.skip("examples/ is not in the installed suite; the tutorial runs in a clone")
    proc = subprocess.run([sys.executable, str(TUTORIAL), "--plots", str(plots)],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, f"examples/tutorial.py failed:\n{proc.stderr[-3000:]}"
    return proc.stdout, plots


def _section(text, start, end):
    i = text.index(start)
    return text[i:text.index(end, i)]


def _floats(s):
    return [float(v) for v in re.findall(r"-?\d+\.\d+(?:e-?\d+)?", s)]


def test_softmax_cell(tutorial_output):
    out, _ = tutorial_output
    assert "Sum of probs:  1.000000 (should be 1.0)" in out


def test_batch_norm_cell_standardizes(tutorial_output):
    out, _ = tutorial_output
    after = _section(out, "After BatchNorm:", "Normalizes to")
    mean = _floats(after.split("Std:")[0])
    std = _floats(after.split("Std:")[1])
    assert len(mean) == 3 and all(abs(m) < 1e-6 for m in mean), after
    # biased batch std of (x - mean) / sqrt(var + eps) with var ~ 25: 1 - eps/(2 var) ~ 0.9999998
    assert len(std) == 3 and all(abs(s - 1) < 1e-3 for s in std), after
    before = _section(out, "Before BatchNorm:", "After BatchNorm:")
    assert all(5 < m < 15 for m in _floats(before.split("Std:")[0])), before


def test_layer_norm_cell(tutorial_output):
    out, _ = tutorial_output
    after = _section(out, "After LayerNorm:", "LayerNorm works on single samples")
    assert "Mean: 0.000" in after or "Mean: -0.000" in after
    assert "Std:  1.000" in after


def test_group_norm_and_model_cells(tutorial_output):
    out, plots = tutorial_output
    assert "Output shape: (2, 8, 8, 16)" in out and "Channels per group: 4" in out
    assert "Output: (4, 10)" in out and "ModernCNN(" in out and "(bn1): BatchNorm2d(64" in out
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert len(list(Path(plots).glob("*.png"))) >= 7


class ModernCNN(impl.graph.Node):
    """The tutorial's model, with the dropout key passed explicitly for jitted training."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = impl.nn.Conv2d(3, 64, kernel_size=(3, 3), padding='SAME')
        self.bn1 = impl.nn.BatchNorm2d(64)
        self.act1 = impl.nn.GELU()
        self.pool1 = impl.nn.MaxPool2d(kernel_size=(2, 2), strides=(2, 2))
        self.conv2 = impl.nn.Conv2d(64, 128, kernel_size=(3, 3), padding='SAME')
        self.bn2 = impl.nn.BatchNorm2d(128)
        self.act2 = impl.nn.GELU()
        self.pool2 = impl.nn.MaxPool2d(kernel_size=(2, 2), strides=(2, 2))
        self.flatten = impl.nn.Flatten()
        self.fc1 = impl.nn.Linear(128 * 8 * 8, 256)
        self.ln = impl.nn.LayerNorm((256,))
        self.act3 = impl.nn.GELU()
        self.dropout = impl.nn.Dropout(p=0.5)
        self.fc2 = impl.nn.Linear(256, num_classes)

    def __call__(self, x, key):
        x = self.pool1(self.act1(self.bn1(self.conv1(x))))
        x = self.pool2(self.act2(self.bn2(self.conv2(x))))
        x = self.act3(self.ln(self.fc1(self.flatten(x))))
        return self.fc2(self.dropout(x, key=key))


def test_model_trains_with_jitted_steps():
    """A learnable synthetic task: the class is which of 3 colour channels is brightest."""
    impl.random.seed(0)
    model = ModernCNN(num_classes=3)
    key = jax.random.PRNGKey(1)
    n = 16
    base = jax.random.normal(key, (n, 32, 32, 3)) * 0.5
    labels = jnp.arange(n) % 3
    x = base + 1.5 * jax.nn.one_hot(labels, 3)[:, None, None, :]

    def loss_fn(m, k):
        logits, new_m = impl.nn.functional_call(m, x, k)
        logp = jax.nn.log_softmax(logits)
        return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=1)), new_m

    @jax.jit
    def step(m, k):
        (loss, new_m), g = jax.value_and_grad(loss_fn, has_aux=True)(m, k)
        # buffers (running statistics) have zero gradient; they come updated in new_m
        return jax.tree_util.tree_map(lambda p, d: p - 0.05 * d, new_m, g), loss

    rm0 = np.asarray(model.bn1.running_mean).copy()
    losses = []
    for i in range(6):
        model, loss = step(model, jax.random.PRNGKey(100 + i))
        losses.append(float(loss))
    assert losses[-1] < 0.7 * losses[0], f"loss did not fall: {losses}"
    assert not np.array_equal(np.asarray(model.bn1.running_mean), rm0), "running statistics did not update"
    assert all(np.isfinite(losses))
