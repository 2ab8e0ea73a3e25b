"""PNG plots of ulp error against input, per elementwise case (needs matplotlib).

For each case: the signed error of the implementation on every golden input of
float32 and bfloat16 against the exact value, on a symmetric-log input axis
(|x| <= 1e4, where the formulas saturate or cancel);
normal-range results in blue, the subnormal class (flushed by the device) in
orange, the budget as dashed lines.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files, never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import jax  # noqa: E402

from tools import calls, golden, metric, target  # noqa: E402
from tools.registry import by_family  # noqa: E402

__all__ = ["plot_all"]

def plot_all(impl_name: str, out_dir) -> list[Path]:
    module = target.load(impl_name)
    store = golden.Store()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for case in by_family("activations"):
        fn = target.provided(module, case.op, impl_name)
        if fn is None:
            continue
        fig, axes = plt.subplots(1, 2, figsize=(12, 4))
        for ax, dtype in zip(axes, ("float32", "bfloat16")):
            x = store.load_inputs(dtype)
            ref = store.load_case(case.family, dtype, case.id)
            try:
                got = calls.run(fn, case.op, {"x": x}, case.params, dtype, jax.devices()[0])["y"]
            except NotImplementedError as e:
                ax.set_title(f"{case.id} {dtype}: not implemented ({e})", fontsize=8)
                continue
            stats, err, codes = metric.evaluate(got, ref["rounded"].astype(np.float64), ref["residual"], dtype,
                                                case.budgets[dtype].max_ulp, x)
            xs = x.astype(np.float64)
            for code, color, label in ((0, "C0", "normal range"), (1, "C1", "subnormal class")):
                m = (codes == code) & np.isfinite(err)
                ax.scatter(xs[m], err[m], s=1, c=color, label=f"{label} ({int(m.sum())})", rasterized=True)
            b = case.budgets[dtype].max_ulp
            ax.axhline(b, ls="--", c="gray", lw=0.8)
            ax.axhline(-b, ls="--", c="gray", lw=0.8)
            ax.set_xscale("symlog", linthresh=1.0)
            ax.set_xlim(-1e4, 1e4)
            ax.set_ylim(-max(1.5 * b, 1.2 * stats.max_ulp, 0.6), max(1.5 * b, 1.2 * stats.max_ulp, 0.6))
            ax.set_title(f"{case.id} {dtype}: max {stats.max_ulp:.3g} ulp, {stats.pct_cr:.2f}% CR")
            ax.set_xlabel("input x (|x| <= 1e4 shown; linear inside [-1, 1])")
            ax.set_ylabel("error (ulp)")
            ax.legend(loc="lower right", fontsize=7, markerscale=6)
        fig.tight_layout()
        p = out_dir / (golden.case_filename(case.id)[:-4] + ".png")
        fig.savefig(p, dpi=90)
        plt.close(fig)
        paths.append(p)
    return paths
