"""The accuracy leaderboard: several implementations' tolerance reports side by side.

Input: the ``report.json`` that ``pytest --report-dir`` writes for each
implementation (``python -m tools.report --impl A --impl B`` runs them and
calls ``write``).  Output: ``leaderboard.md``, ``leaderboard.json`` and, with
matplotlib, ``leaderboard-*.png`` bar charts.

Per op x dtype and implementation:

* max ulp: the largest |error| over normal-range results on the golden inputs
  (the same inputs for every implementation), the maximum over devices; the
  subnormal class and nan/inf mismatches are counted apart, as in the report;
* % CR: the share of those results that are correctly rounded (the minimum
  over devices);
* special-value failures: table entries of ``tools/special_values.py`` that
  fail on at least one device, of the entries checked;
* gradient max ulp, when the suite recorded gradient rows (kind "grad"; and
  "grad2", the second derivative).

The best value of each row is in bold (ties included); a value over the
registry budget is marked "!", and each such failure is listed with the worst
input.  "–" means the implementation does not provide the op; "skip" means it
raised ``NotImplementedError`` or could not run the case (reasons listed).
"""

from __future__ import annotations

import datetime
import json
import math
from pathlib import Path

from tools.reporting import _DT_ORDER, _fmt_ulp, stat_rows

__all__ = ["build", "render_markdown", "render_summary", "write", "write_plots"]


def _golden_first(rows):
    g = [r for r in rows if r["source"] == "golden"]
    return g or rows


def _measure(rows, kind):
    """Per (case, dtype): the aggregate of the kind's stat rows over devices (golden source preferred)."""
    by = {}
    for r in stat_rows(rows):
        if r["kind"] == kind:
            by.setdefault((r["case"], r["dtype"]), []).append(r)
    out = {}
    for key, rs in by.items():
        rs = _golden_first(rs)
        worst = max(rs, key=lambda r: r["max_ulp"])
        within = all(r["passed"] for r in rs)  # the tests' verdicts
        absolute = [r for r in rs if r.get("max_abs_ulps") is not None]
        worst_abs = max(absolute, key=lambda r: r["max_abs_ulps"]) if absolute else None
        out[key] = {
            "max_ulp": worst["max_ulp"], "worst_input": worst.get("worst_input"), "worst_device": worst["device"],
            "pct_cr": min(r["pct_cr"] for r in rs), "n": worst["n"],
            "nonfinite_mismatch": max(r["n_nonfinite_mismatch"] for r in rs),
            "subnormal_flushed": max(r["n_flushed"] for r in rs), "n_subnormal": worst["n_subnormal"],
            "budget_max_ulp": worst["budget_max_ulp"], "budget_min_cr": worst["budget_min_cr"],
            "within_budget": within, "source": worst["source"],
            # judged by an a-priori error bound (linear, conv2d), not by its ulp figure
            "judged_by_bound": any(r.get("bound_fraction") is not None for r in rs),
        }
        if worst_abs is not None:
            out[key].update(max_abs_ulps=worst_abs["max_abs_ulps"], abs_unit=worst_abs.get("abs_unit", "ulp"),
                            budget_max_abs_ulps=worst_abs.get("budget_max_abs_ulps"))
    return out


def _specials(rows):
    """Per (case, dtype): table entries checked, and those failing on at least one device."""
    entries = {}
    for r in rows:
        if r["kind"] == "special":
            e = entries.setdefault((r["case"], r["dtype"]), {}).setdefault(
                r["x"], {"x": r["x"], "expected": r["expected"], "failures": []})
            if r["status"] == "fail":
                e["failures"].append({"device": r["device"], "got": r["got"]})
    out = {}
    for key, es in entries.items():
        failed = [e for e in es.values() if e["failures"]]
        out[key] = {"checks": len(es), "failed": len(failed), "failures": failed}
    return out


def _skips(rows):
    out = {}
    for r in rows:
        if r["kind"] == "skip" and r["dtype"]:
            out.setdefault((r["case"], r["dtype"]), set()).add(r["reason"])
    return out


def build(sections, generated=None):
    """``sections``: list of dicts ``{"impl", "header", "rows", "exit_status", "wall_s"}``.
    Returns the leaderboard as a JSON-serializable dict."""
    impls, cells = [], []
    keys = set()
    per = {}
    for s in sections:
        rows = s["rows"]
        value, grad, spec, skip = _measure(rows, "value"), _measure(rows, "grad"), _specials(rows), _skips(rows)
        grad2 = _measure(rows, "grad2")
        stats = _measure(rows, "running_stats")
        value.update(stats)  # batch_norm's new running statistics: cases "<id>:running_mean"/"...:running_var"
        per[s["impl"]] = (value, grad, spec, skip, grad2)
        keys |= set(value) | set(grad) | set(spec) | set(skip) | set(grad2)
        impls.append({"impl": s["impl"], "peer": s["header"].get("peer", ""),
                      "capabilities": s["header"].get("capabilities", ""), "exit_status": s.get("exit_status"),
                      "wall_s": s.get("wall_s"), "header": s["header"]})
    order = _case_order()
    # a running-statistics row "<id>:running_mean" sorts right after its case "<id>"
    for case, dtype in sorted(keys, key=lambda k: (order.get(k[0].split(":")[0], 999), k[0], _DT_ORDER.get(k[1], 9))):
        for s in sections:
            value, grad, spec, skip, grad2 = per[s["impl"]]
            c = {"case": case, "dtype": dtype, "impl": s["impl"]}
            if (case, dtype) in value:
                c.update(value[(case, dtype)])
            if (case, dtype) in grad:
                g = grad[(case, dtype)]
                c.update(grad_max_ulp=g["max_ulp"], grad_worst_input=g["worst_input"],
                         grad_within_budget=g["within_budget"], grad_budget_max_ulp=g["budget_max_ulp"])
            if (case, dtype) in grad2:
                g = grad2[(case, dtype)]
                c.update(grad2_max_ulp=g["max_ulp"], grad2_within_budget=g["within_budget"])
            if (case, dtype) in spec:
                sp = spec[(case, dtype)]
                c.update(special_checks=sp["checks"], special_failed=sp["failed"], special_failures=sp["failures"])
            reasons = sorted(skip.get((case, dtype), ()))
            if reasons and "max_ulp" not in c:
                c["skip_reasons"] = reasons
                c["status"] = "not provided" if all("not provided by" in r for r in reasons) else "skipped"
            else:
                c["status"] = "measured" if "max_ulp" in c or "special_checks" in c else "absent"
            cells.append(c)
    return {"generated": generated or datetime.date.today().isoformat(), "implementations": impls,
            "cells": cells, "summary": _summary(impls, cells)}


def _case_order():
    try:
        from tools.registry import CASES
    except Exception:  # pragma: no cover - the registry always imports in this repository
        return {}
    return {c.id: i for i, c in enumerate(CASES)}


def _summary(impls, cells):
    out = []
    for imp in impls:
        mine = [c for c in cells if c["impl"] == imp["impl"]]
        measured = [c for c in mine if "max_ulp" in c]
        f32 = [c for c in measured if c["dtype"] == "float32" and not c.get("judged_by_bound")]
        worst32 = max(f32, key=lambda c: c["max_ulp"]) if f32 else None
        out.append({
            "impl": imp["impl"],
            "cases_measured": len({c["case"] for c in measured if ":" not in c["case"]}),
            "cells_measured": len(measured),
            "cells_within_budget": sum(c["within_budget"] for c in measured),
            "cells_all_cr": sum(c["pct_cr"] == 100.0 and c["nonfinite_mismatch"] == 0 for c in measured),
            "worst_float32_max_ulp": worst32["max_ulp"] if worst32 else None,
            "worst_float32_case": worst32["case"] if worst32 else None,
            "special_failed": sum(c.get("special_failed", 0) for c in mine),
            "special_checks": sum(c.get("special_checks", 0) for c in mine),
            "grad_cells": sum("grad_max_ulp" in c for c in mine),
            "grad_within_budget": sum(bool(c.get("grad_within_budget")) for c in mine),
        })
    return out


# ---- rendering ------------------------------------------------------------------

def _short(impl):
    return impl.removeprefix("adapters.")


def _grid(board):
    """{(case, dtype): {impl: cell}} in the board's order."""
    g = {}
    for c in board["cells"]:
        g.setdefault((c["case"], c["dtype"]), {})[c["impl"]] = c
    return g


def _rank(metric, c):
    """The value a cell is ranked by: a max-ulp figure with nan/inf mismatches beside it
    cannot be the best (a NaN for a finite result is worse than any finite error)."""
    v = c[metric]
    if metric == "max_ulp" and c.get("nonfinite_mismatch"):
        return math.inf
    return v


def _table(board, metric, fmt, better, title, note):
    impls = [i["impl"] for i in board["implementations"]]
    rows = []
    for (case, dtype), cs in _grid(board).items():
        vals = {i: _rank(metric, cs[i]) for i in impls if i in cs and cs[i].get(metric) is not None}
        if not vals:
            continue
        best = better(vals.values())
        if metric == "max_ulp" and math.isinf(best):
            best = None  # every cell has nan/inf mismatches: none is best
        line = [f"`{case}`", dtype]
        for i in impls:
            c = cs.get(i, {})
            if i in vals:
                t = fmt(c)
                line.append(f"**{t}**" if vals[i] == best and len(impls) > 1 else t)
            else:
                line.append("–" if c.get("status") in ("not provided", "absent", None) else "skip")
        rows.append(line)
    if not rows:
        return []
    out = [f"## {title}", "", note, "", "| op | dtype | " + " | ".join(f"`{_short(i)}`" for i in impls) + " |",
           "|---|---|" + "---|" * len(impls)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out + [""]


def _over(v, budget):
    """``v`` above a budget (None: not budgeted)."""
    return budget is not None and v > budget


def _under(v, budget):
    return budget is not None and v < budget


def _fmt_max(c):
    nf = f" (+{c['nonfinite_mismatch']} nan/inf)" if c["nonfinite_mismatch"] else ""
    return _fmt_ulp(c["max_ulp"]) + (" !" if _over(c["max_ulp"], c["budget_max_ulp"]) else "") + nf


def _fmt_abs(c):
    b = c.get("budget_max_abs_ulps")
    return _fmt_ulp(c["max_abs_ulps"]) + (" !" if b is not None and c["max_abs_ulps"] > b else "")


def _fmt_cr(c):
    return f"{c['pct_cr']:.2f}" + (" !" if _under(c["pct_cr"], c["budget_min_cr"]) else "")


def _fmt_special(c):
    return f"{c['special_failed']}/{c['special_checks']}"


def _fmt_grad(c):
    return _fmt_ulp(c["grad_max_ulp"]) + ("" if c.get("grad_within_budget", True) else " !")


def _fmt_grad2(c):
    return _fmt_ulp(c["grad2_max_ulp"]) + ("" if c.get("grad2_within_budget", True) else " !")


def _fmt_x(v):
    return "-" if v is None else f"{v:.9g}"


def _failures(board):
    out = []
    for c in board["cells"]:
        who = f"`{_short(c['impl'])}` `{c['case']}` {c['dtype']}"
        if "max_ulp" in c and not c["within_budget"]:
            extra = []
            if _over(c["max_ulp"], c["budget_max_ulp"]):
                extra.append(f"max {_fmt_ulp(c['max_ulp'])} ulp at x = {_fmt_x(c['worst_input'])} "
                             f"(on {c['worst_device']}; budget {_fmt_ulp(c['budget_max_ulp'])} ulp)")
            if _under(c["pct_cr"], c["budget_min_cr"]):
                extra.append(f"{c['pct_cr']:.3f}% CR (budget >= {c['budget_min_cr']:g}%)")
            b = c.get("budget_max_abs_ulps")
            if b is not None and c.get("max_abs_ulps", 0.0) > b:
                extra.append(f"|got - exact| up to {_fmt_ulp(c['max_abs_ulps'])} {c.get('abs_unit', 'ulp')} "
                             f"(budget {_fmt_ulp(b)})")
            if c["nonfinite_mismatch"]:
                extra.append(f"{c['nonfinite_mismatch']} nan/inf mismatches")
            out.append(f"- {who}: " + "; ".join(extra))
        for f in c.get("special_failures", ()):
            gots = ", ".join(f"{d['got']} on {d['device']}" for d in f["failures"])
            out.append(f"- {who}: special value x = {f['x']}: expected {f['expected']}, got {gots}")
        if "grad_max_ulp" in c and not c.get("grad_within_budget", True):
            out.append(f"- {who}: gradient max {_fmt_ulp(c['grad_max_ulp'])} ulp at x = "
                       f"{_fmt_x(c.get('grad_worst_input'))} (budget {_fmt_ulp(c['grad_budget_max_ulp'])} ulp)")
    return out


def _skipped(board):
    by = {}
    for c in board["cells"]:
        if c.get("status") == "skipped":
            for r in c["skip_reasons"]:
                by.setdefault((c["impl"], r), []).append(f"{c['case']} {c['dtype']}")
    return [f"- `{_short(i)}`: {r} ({', '.join(v)})" for (i, r), v in sorted(by.items())]


def render_summary(board):
    """The short table (per implementation) that the README carries."""
    out = ["| implementation | cases measured | case x dtype within budget | all correctly rounded "
           "| worst float32 max ulp | special-value failures |" + (" gradients within budget |"
                                                                   if any(s["grad_cells"] for s in board["summary"])
                                                                   else ""),
           "|---|---|---|---|---|---|" + ("---|" if any(s["grad_cells"] for s in board["summary"]) else "")]
    for s in board["summary"]:
        w = "-" if s["worst_float32_max_ulp"] is None else \
            f"{_fmt_ulp(s['worst_float32_max_ulp'])} (`{s['worst_float32_case']}`)"
        line = (f"| `{s['impl']}` | {s['cases_measured']} | {s['cells_within_budget']}/{s['cells_measured']} | "
                f"{s['cells_all_cr']}/{s['cells_measured']} | {w} | {s['special_failed']}/{s['special_checks']} |")
        if any(x["grad_cells"] for x in board["summary"]):
            line += f" {s['grad_within_budget']}/{s['grad_cells']} |"
        out.append(line)
    return "\n".join(out)


def render_markdown(board):
    out = ["# Accuracy leaderboard", "", f"Generated {board['generated']} by `python -m tools.report` "
           "(see `tools/leaderboard.py` for the definitions).", ""]
    first = board["implementations"][0]["header"] if board["implementations"] else {}
    for k in ("versions", "machine", "devices"):
        if k in first:
            out.append(f"- {k}: {first[k]}")
    out += ["", "| implementation | peer | capabilities | suite exit status | wall time |", "|---|---|---|---|---|"]
    for i in board["implementations"]:
        wall = "-" if i["wall_s"] is None else f"{i['wall_s']:.0f} s"
        out.append(f"| `{i['impl']}` | {i['peer'] or '-'} | {i['capabilities']} | {i['exit_status']} | {wall} |")
    out += ["", "## Summary", "", render_summary(board), ""]
    out += _table(board, "max_ulp", _fmt_max, min, "Max ulp (normal range, golden inputs)",
                  "Largest |error| in ulps of the dtype over normal-range results, max over devices; lower is "
                  "better, best in bold; ! = over the registry budget; (+k nan/inf) = k golden inputs whose "
                  "result is nan or infinite on one side only.")
    out += _table(board, "max_abs_ulps", _fmt_abs, min, "Max absolute error (normalization, softmax)",
                  "Largest |got - exact| in ulps of 1.0 of the dtype (the unit the normalization budgets use: "
                  "outputs near 0 carry the statistics' absolute error), max over devices; lower is better.")
    out += _table(board, "pct_cr", _fmt_cr, max, "% correctly rounded (golden inputs)",
                  "Share of normal-range results bit-equal to the correctly rounded value (the sign of a zero "
                  "counts), min over devices; higher is better; ! = under the registry budget.")
    out += _table(board, "special_failed", _fmt_special, min, "Special-value failures",
                  "Entries of the special-values table (±0, ±inf, nan, ±max, ±tiny, kinks; sign of zero counts) "
                  "failing on at least one device / entries checked; lower is better.")
    out += _table(board, "grad_max_ulp", _fmt_grad, min, "Gradient max ulp",
                  "Largest |error| of the derivative (jax.grad, golden inputs) in ulps of the dtype, max over "
                  "devices; lower is better; ! = over the registry budget.")
    out += _table(board, "grad2_max_ulp", _fmt_grad2, min, "Second derivative max ulp",
                  "The same for the second derivative (grad of grad).")
    fails = _failures(board)
    if fails:
        out += ["## Failures, with the worst input", ""] + fails + [""]
    sk = _skipped(board)
    if sk:
        out += ["## Skipped cases", ""] + sk + [""]
    return "\n".join(out)


def write(out_dir, sections, generated=None, plots=True):
    """Write ``leaderboard.json`` and ``leaderboard.md`` (and PNG charts when matplotlib is
    available and ``plots``); returns the board."""
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    board = build(sections, generated)
    (d / "leaderboard.json").write_text(json.dumps(board, indent=1, default=float) + "\n")
    (d / "leaderboard.md").write_text(render_markdown(board))
    if plots:
        try:
            write_plots(board, d)
        except ImportError as e:  # matplotlib is optional
            print(f"leaderboard charts skipped: {e} (pip install matplotlib)")
    return board


def _families():
    try:
        from tools.registry import CASES
    except Exception:  # pragma: no cover
        return {}
    return {c.id: c.family for c in CASES}


def write_plots(board, out_dir, per_chart=24):
    """Grouped bar charts of max ulp, one per family and dtype (``leaderboard-<family>-<dtype>.png``,
    split into parts of ``per_chart`` cases): a bar per implementation, symlog axis, the budget
    dashed.  Only cases that at least two implementations ran are drawn (a comparison)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    impls = [i["impl"] for i in board["implementations"]]
    grid = _grid(board)
    fam = _families()
    paths = []
    groups = {}
    for (case, dtype), cs in grid.items():
        measured = [i for i in impls if "max_ulp" in cs.get(i, {})]
        if ":" in case or len(measured) < min(2, len(impls)):
            continue
        groups.setdefault((fam.get(case, "other"), dtype), []).append(case)
    for (family, dtype), cases in sorted(groups.items(), key=lambda kv: (kv[0][0], _DT_ORDER.get(kv[0][1], 9))):
        parts = [cases[k:k + per_chart] for k in range(0, len(cases), per_chart)]
        for n, part in enumerate(parts):
            fig, ax = plt.subplots(figsize=(max(8, 0.55 * len(part) * max(1, len(impls)) / 2 + 2), 5))
            w = 0.8 / max(1, len(impls))
            for j, imp in enumerate(impls):
                xs, hs = [], []
                for i, case in enumerate(part):
                    c = grid[(case, dtype)].get(imp, {})
                    if "max_ulp" in c and math.isfinite(c["max_ulp"]):
                        xs.append(i + (j - (len(impls) - 1) / 2) * w)
                        hs.append(c["max_ulp"])
                ax.bar(xs, hs, width=w, label=_short(imp))
            budgets = {c.get("budget_max_ulp") for case in part for c in grid[(case, dtype)].values()}
            for b in budgets:
                if b is not None and math.isfinite(b):
                    ax.axhline(b, ls="--", c="gray", lw=0.8)
            ax.set_yscale("symlog", linthresh=1.0)
            ax.set_xticks(range(len(part)))
            ax.set_xticklabels(part, rotation=40, ha="right", fontsize=7)
            ax.set_ylabel("max ulp (normal range; symlog)")
            suffix = f" ({n + 1}/{len(parts)})" if len(parts) > 1 else ""
            ax.set_title(f"{family}, {dtype}: max ulp on the golden inputs{suffix} (lower is better; dashed: budget)",
                         fontsize=9)
            ax.legend(fontsize=7, ncol=min(3, len(impls)))
            fig.tight_layout()
            name = f"leaderboard-{family}-{dtype}" + (f"-{n + 1}" if len(parts) > 1 else "") + ".png"
            p = Path(out_dir) / name
            fig.savefig(p, dpi=80)
            plt.close(fig)
            paths.append(p)
    return paths


def main(argv=None) -> int:
    """``python -m tools.leaderboard DIR``: rebuild DIR/leaderboard.* from the per-implementation
    reports ``DIR/<implementation>/report.json`` of an earlier ``python -m tools.report`` run."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m tools.leaderboard", description=main.__doc__.split("\n")[0])
    ap.add_argument("dir", help="the --out folder of python -m tools.report")
    ap.add_argument("--impl", action="append", help="implementations, in column order (default: every report)")
    ap.add_argument("--no-plots", action="store_true")
    args = ap.parse_args(argv)
    root = Path(args.dir)
    summary = json.loads((root / "report.json").read_text()) if (root / "report.json").exists() else {}
    impls = args.impl or list(summary) or sorted(p.parent.name for p in root.glob("*/report.json"))
    sections = []
    for impl in impls:
        data = summary.get(impl)
        if data is None:
            slug = "".join(c if c.isalnum() or c in "._-" else "_" for c in impl)
            p = root / slug / "report.json"
            if not p.exists():
                ap.error(f"no report for {impl} in {root} (looked for {p})")
            data = json.loads(p.read_text())
        sections.append({"impl": impl, "header": data["header"], "rows": data["rows"],
                         "exit_status": data["header"].get("pytest exit status"),
                         "wall_s": data["header"].get("suite wall time s")})
    board = write(root, sections, plots=not args.no_plots)
    print(render_summary(board))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
