"""The tolerance report: the verdict rows recorded by the tests, rendered as text, Markdown and JSON.

A row is a :class:`tools.verdict.Verdict` in its JSON form (so pytest-xdist workers can send it
to the controller; the schema is in ``tools/verdict.py``).  Its ``passed`` is the test's
verdict: nothing here recomputes it from the budget.  Measurement rows (``kind`` "value",
"grad", ...; ``source`` "golden" or "live") carry the fields of ``tools.metric.Stats`` and the
budget they were judged by; "special" rows one special-value check (``x``, ``expected``,
``got``); "check" rows another failing test's message; "skip" a case the implementation under
test did not run (``reason``); "warning" a warning the implementation raised.

The report opens with the verdict (``render_verdict_md``): one row per op, one column per dtype,
✓ or ✗ with the worst figure, then the failures grouped by root cause, each with the command
that reproduces it; the detail tables follow.

Columns: n, max ulp over normal-range results, p99 ulp, max abs (rows that
record ``max_abs_ulps``: the largest ``|got - exact|`` in ulps of the row's
``abs_unit``, e.g. ``ulp(1.0)`` for normalized outputs), % correctly rounded,
subnormal results flushed (of how many), nan/inf mismatches, budget, headroom
(budget / max ulp, or budget / max abs where only the absolute error is
budgeted; "inf" when the max is 0).

Rows judged by an a-priori error bound rather than an ulp budget (linear
maps) carry ``bound_fraction`` (the largest ``|error| / bound``) and
``budget_text`` (and ``budget_max_ulp`` None); their budget cell shows that
text and their headroom is ``max_bound_fraction / bound_fraction``.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

from tools.verdict import CAUSES, Verdict, op_of, worst_figure

__all__ = ["row_from_stats", "sort_rows", "matrix_cells", "failure_groups", "render_verdict_text",
           "render_verdict_md", "render_markdown", "write_report",
           "cross_device_table", "stat_rows", "special_summary", "skip_summary"]

COLUMNS = ["kind", "case", "dtype", "device", "source", "n", "max ulp", "p99 ulp", "max abs", "% CR",
           "subnormal flushed", "nan/inf mismatch", "budget", "headroom", "worst input"]


def row_from_stats(kind, case, dtype, device, source, stats, budget, worst_input=None, extra=None, message=None):
    """The :class:`tools.verdict.Verdict` of one measurement: ``stats`` against ``budget``, judged by
    the test that measured it (``message``: its failure message, None when it passed)."""
    fig = {k: getattr(stats, k) for k in stats.__dataclass_fields__}
    fig.update(pct_cr=stats.pct_cr, budget_max_ulp=budget.max_ulp, budget_min_cr=budget.min_cr,
               budget_max_abs_ulps=getattr(budget, "max_abs_ulps", None), worst_input=worst_input,
               profile=getattr(budget, "profile", "strict"))
    fig.update(extra or {})
    return Verdict(kind=kind, case=case, dtype=dtype, device=device, source=source, passed=message is None,
                   cause="" if message is None else _cause(case, fig), detail=_detail(fig, message),
                   figures=fig)


def _cause(case, fig):
    over = (fig["n_over"] or fig["pct_cr"] < (fig["budget_min_cr"] or 0)
            or (fig.get("bound_fraction") or 0) > fig.get("max_bound_fraction", 1.0)
            or (fig.get("budget_max_abs_ulps") is not None and (fig.get("max_abs_ulps") or 0) > fig["budget_max_abs_ulps"]))
    if fig["n_nonfinite_mismatch"] and not over:
        return "nan/inf"
    return "cancellation" if _LARGE_OFFSET.search(case) else "accuracy"


def _detail(fig, message):
    """One line: the figures that failed (the first line of the message when it has none)."""
    if message is None:
        return ""
    parts = []
    if fig.get("bound_fraction") is not None:
        if fig["bound_fraction"] > fig.get("max_bound_fraction", 1.0):
            parts.append(f"{fig['bound_fraction']:.3g} of {fig.get('budget_text', 'the bound')}")
    elif fig["n_over"]:
        at = "" if fig.get("worst_input") is None else f" at x = {fig['worst_input']:.9g}"
        parts.append(f"max {_fmt_ulp(fig['max_ulp'])} ulp{at} (budget {_fmt_ulp(fig['budget_max_ulp'])} ulp)")
    if fig["pct_cr"] < (fig["budget_min_cr"] or 0):
        parts.append(f"{fig['pct_cr']:.3f}% correctly rounded (budget >= {fig['budget_min_cr']:g}%)")
    b = fig.get("budget_max_abs_ulps")
    if b is not None and (fig.get("max_abs_ulps") or 0) > b:
        parts.append(f"|got - exact| up to {_fmt_ulp(fig['max_abs_ulps'])} {fig.get('abs_unit', 'ulp')} "
                     f"(budget {_fmt_ulp(b)})")
    if fig["n_nonfinite_mismatch"]:
        parts.append(f"{fig['n_nonfinite_mismatch']} results NaN or infinite where the exact one is not (or the "
                     "reverse)")
    return "; ".join(parts) or message.strip().splitlines()[-1].strip()


# a case at a large mean offset or logit scale, where a cancelling formula loses its bits
_LARGE_OFFSET = re.compile(r"(mu|scale)=1e[2-9]")


_DT_ORDER = {"float32": 0, "bfloat16": 1, "float16": 2, "float64": 3}


def sort_rows(rows):
    return sorted(rows, key=lambda r: (r["kind"], r["case"], _DT_ORDER.get(r["dtype"], 9), r["device"],
                                       r["source"], str(r.get("x", ""))))


def stat_rows(rows):
    """The measurement rows (those with ulp statistics)."""
    return [r for r in rows if "max_ulp" in r]


def special_summary(rows):
    """Per (case, dtype): (checks, failed, [failing rows]) over the "special" rows; a check
    is one table entry on one device."""
    out = {}
    for r in rows:
        if r["kind"] != "special":
            continue
        n, bad, fails = out.get((r["case"], r["dtype"]), (0, 0, []))
        if r["status"] == "fail":
            bad, fails = bad + 1, fails + [r]
        out[(r["case"], r["dtype"])] = (n + 1, bad, fails)
    return out


def skip_summary(rows):
    """Per reason: the sorted (case, dtype) pairs skipped for it."""
    out = {}
    for r in rows:
        if r["kind"] == "skip":
            out.setdefault(r["reason"], set()).add((r["case"], r["dtype"]))
    return {k: sorted(v, key=lambda cd: (cd[0], _DT_ORDER.get(cd[1], 9))) for k, v in sorted(out.items())}


def _special_lines(rows):
    summ = special_summary(rows)
    if not summ:
        return []
    n = sum(v[0] for v in summ.values())
    bad = [f for v in summ.values() for f in v[2]]
    out = [f"special values: {n - len(bad)} of {n} checks pass"]
    for r in sort_rows(bad):
        out.append(f"  FAIL {r['case']}(x={r['x']}) {r['dtype']} on {r['device']}: expected {r['expected']}, "
                   f"got {r['got']}")
    return out


def _skip_lines(rows):
    out = []
    for reason, pairs in skip_summary(rows).items():
        cases = sorted({c for c, _ in pairs})
        out.append(f"skipped ({len(pairs)} case x dtype): {reason} [{', '.join(cases)}]")
    return out


def _fmt_ulp(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if v == 0:
        return "0"
    if v >= 1000:
        return f"{v:.3g}"
    return f"{v:.3f}"


def _fmt_abs(r):
    v = r.get("max_abs_ulps")
    if v is None:
        return "-"
    return f"{_fmt_ulp(v)} {r.get('abs_unit', 'ulp')}"


def _fmt_budget(r):
    parts = [] if math.isinf(r["budget_max_ulp"]) else [f"<= {_fmt_ulp(r['budget_max_ulp'])} ulp"]
    if r["budget_min_cr"]:
        parts.append(f">= {r['budget_min_cr']:g}% CR")
    if r.get("budget_max_abs_ulps") is not None:
        parts.append(f"abs <= {_fmt_ulp(r['budget_max_abs_ulps'])} {r.get('abs_unit', 'ulp')}")
    return ", ".join(parts) or "-"


def _cells(r):
    mx = r["max_ulp"]
    if r.get("bound_fraction") is not None:
        frac = r["bound_fraction"]
        head = "inf" if frac == 0 else f"{r.get('max_bound_fraction', 1.0) / frac:.2f}x"
        budget_cell = f"{r.get('budget_text', 'a-priori bound')} (max {frac:.3g} of it)"
    else:
        budget, got = r["budget_max_ulp"], mx
        if math.isinf(budget) and r.get("budget_max_abs_ulps") is not None:  # only the absolute error is budgeted
            budget, got = r["budget_max_abs_ulps"], r.get("max_abs_ulps", 0.0)
        head = "inf" if got == 0 else f"{budget / got:.2f}x"
        budget_cell = _fmt_budget(r)
    worst = "" if r.get("worst_input") is None else f"{r['worst_input']:.9g}"
    return [
        r["kind"], r["case"], r["dtype"], r["device"], r["source"], str(r["n"]), _fmt_ulp(mx),
        _fmt_ulp(r["p99_ulp"]), _fmt_abs(r), f"{r['pct_cr']:.3f}", f"{r['n_flushed']}/{r['n_subnormal']}",
        str(r["n_nonfinite_mismatch"]), budget_cell, head, worst,
    ]


def cross_device_table(rows):
    """Per kind x case x dtype, the max ulp of each device against the golden data side by
    side; a device over its budget is flagged with "!".  Returns (devices, table rows)."""
    golden_rows = [r for r in stat_rows(rows) if r["source"] == "golden"]
    devices = sorted({r["device"] for r in golden_rows})
    cells = {}
    for r in golden_rows:
        key = (r["kind"], r["case"], r["dtype"])
        shown = (f"{r['bound_fraction']:.3g} of bound" if r.get("bound_fraction") is not None
                 else _fmt_ulp(r["max_ulp"]))
        cells.setdefault(key, {})[r["device"]] = shown + ("" if r["passed"] else " !")
    table = []
    for key in sorted(cells, key=lambda k: (k[0], k[1], _DT_ORDER.get(k[2], 9))):
        per = cells[key]
        values = {v.rstrip(" !") for v in per.values()}
        agree = "same" if len(values) == 1 and len(per) == len(devices) else "DIFFER"
        table.append(list(key) + [per.get(d, "-") for d in devices] + [agree])
    return devices, table


def _render_cross_device_md(rows):
    devices, table = cross_device_table(rows)
    if len(devices) < 2:
        return []
    out = ["", "## Across devices (max ulp vs golden; ! = over budget)", "",
           "| kind | case | dtype | " + " | ".join(devices) + " | agreement |",
           "|" + "---|" * (4 + len(devices))]
    out += ["| " + " | ".join(t) + " |" for t in table]
    return out


def render_markdown(rows, header_lines=(), title="Conformance tolerance report", sections=None):
    """The report: the profile (the header's first line), the verdict matrix and the failures by
    root cause, then the header and the detail tables."""
    special, skips = _special_lines(rows), _skip_lines(rows)
    verdict, failures = render_verdict_md(rows), _failure_detail_md(rows)
    header_lines = list(header_lines)
    first = next((h for h in header_lines if h.startswith("profile:")), "")  # the report's first line
    header_lines = [h for h in header_lines if h != first]
    rows = sort_rows(stat_rows(rows))
    out = [f"# {title}", ""] + ([f"**{first}**", ""] if first else []) + verdict + failures
    for name, items in (sections or {}).items():
        out += ["", f"## {name}", ""] + ([f"- {i}" for i in items] or ["none"])
    out += ["", "## Run", ""] + [f"- {h}" for h in header_lines]
    out += ["", "## Measurements", "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = _cells(r)
        cells[1] = f"`{cells[1]}`"
        out.append("| " + " | ".join(cells) + " |")
    out += _render_cross_device_md(rows)
    if special:
        out += ["", "## Special values", "", special[0]]
        if len(special) > 1:
            out += [""] + [f"- {line.strip()}" for line in special[1:]]
    if skips:
        out += ["", "## Skipped", ""] + [f"- {line}" for line in skips]
    return "\n".join(out) + "\n"


# ---- the verdict on one screen ------------------------------------------------------------

MATRIX_DTYPES = ("float32", "bfloat16", "float16", "float64")
ANY = "any dtype"  # rows without a dtype: API, signatures, conventions checked once


def _judged(rows):
    return [r for r in rows if r.get("passed") is not None and r["kind"] not in ("skip", "warning")]


def _short_fig(r):
    fig, unit = worst_figure(r)
    unit = {"ulp": "", "of bound": " of bound"}.get(unit, f" {unit}")
    return f"{_fmt_ulp(fig)}{unit}"


def _failure_label(r):
    if r["kind"] in ("value", "param", "running_stats", "vjp") and "max_ulp" in r:
        return _short_fig(r) if r.get("cause") != "nan/inf" else "NaN/inf"
    if r["kind"] in ("grad", "grad2") and "max_ulp" in r:
        return f"{r['kind'].replace('grad2', 'grad²')} " + (_short_fig(r) if r.get("cause") != "nan/inf" else "NaN/inf")
    return {"special": "special value", "check": r.get("cause") or "check"}.get(r["kind"], r["kind"])


def matrix_cells(rows):
    """``{op: {column: (passed, text)}}``: per op and dtype (or ``ANY``), ✓ with the worst value figure
    (max ulp, or the unit the case is budgeted in), or ✗ with what failed; ``None`` for not run."""
    by = {}
    for r in _judged(rows):
        by.setdefault((r.get("op") or op_of(r["case"]), r["dtype"] if r["dtype"] in MATRIX_DTYPES else ANY), []).append(r)
    skipped = {(r.get("op") or op_of(r["case"]), r["dtype"]) for r in rows if r["kind"] == "skip"}
    ops = sorted({op for op, _ in by} | {op for op, _ in skipped if op})
    out = {}
    for op in ops:
        out[op] = {}
        for col in MATRIX_DTYPES + (ANY,):
            rs = by.get((op, col))
            if not rs:
                out[op][col] = (None, "skip" if (op, col) in skipped else "")
                continue
            bad = [r for r in rs if not r["passed"]]
            if not bad:
                vals = [r for r in rs if r["kind"] == "value" and "max_ulp" in r]
                out[op][col] = (True, "✓ " + _short_fig(max(vals, key=lambda r: worst_figure(r)[0])) if vals else "✓")
                continue
            labels, seen = [], set()
            for r in sorted(bad, key=lambda r: (r["kind"] != "value", -worst_figure(r)[0] if "max_ulp" in r else 0)):
                lab = _failure_label(r)
                if lab not in seen:
                    seen.add(lab)
                    labels.append(lab)
            known = all(r.get("outcome") in ("xfailed", "baseline") for r in bad)
            note = " (known)" if known and any(r.get("outcome") == "xfailed" for r in bad) else \
                " (baseline)" if known else ""
            more = f" (+{len(bad) - 1})" if len(bad) > 1 else ""
            out[op][col] = (False, f"✗ {labels[0]}{more}{note}")
    return out


def failure_groups(rows):
    """``[(cause, [failing rows, one per test])]`` in the order of ``tools.verdict.CAUSES``; failures the
    run expected (a registry known failure, or one the baseline has) are left out."""
    groups, seen = {}, set()
    for r in sort_rows(_judged(rows)):
        if r["passed"] or r.get("outcome") in ("xfailed", "baseline"):
            continue
        key = r.get("test") or (r["kind"], r["case"], r["dtype"], r["device"], r["source"])
        if key in seen:
            continue
        seen.add(key)
        groups.setdefault(r.get("cause") or "check", []).append(r)
    return [(c, groups[c]) for c in CAUSES if c in groups]


def _group_summary(cause, rs):
    ops = sorted({r.get("op") or op_of(r["case"]) for r in rs})
    dts = [d for d in MATRIX_DTYPES if any(r["dtype"] == d for r in rs)]
    first = max(rs, key=lambda r: worst_figure(r)[0] if "max_ulp" in r else -1.0)
    return (f"{CAUSES[cause]}: {len(rs)} failing test{'s' * (len(rs) != 1)} in {', '.join(ops[:8])}"
            f"{' and %d more ops' % (len(ops) - 8) if len(ops) > 8 else ''}"
            f"{' (' + ', '.join(dts) + ')' if dts else ''}", first)


def _where(r, q=""):
    return f"{q}{r['case']}{q}" + (f" {r['dtype']}" if r["dtype"] else "") + (f" on {r['device']}" if r["device"] else "")


def _split_unrun(cells):
    """The ops with at least one judged cell, and those the implementation ran none of."""
    unrun = sorted(op for op, c in cells.items() if all(v is None for v, _ in c.values()))
    return {op: c for op, c in cells.items() if op not in unrun}, unrun


def render_verdict_text(rows, profile_line=""):
    """The verdict in a few lines (pytest's terminal summary): the matrix, then one line per root cause."""
    cells, unrun = _split_unrun(matrix_cells(rows))
    cols = [c for c in MATRIX_DTYPES + (ANY,) if any(cells[op][c][1] for op in cells)]
    table = [["op"] + cols] + [[op] + [cells[op][c][1] or "" for c in cols] for op in cells]
    w = [max(len(t[i]) for t in table) for i in range(len(table[0]))]
    out = [profile_line] if profile_line else []
    out += ["  ".join(c.ljust(x) for c, x in zip(t, w)).rstrip() for t in table]
    if unrun:
        out.append(f"not provided or skipped: {', '.join(unrun)}")
    for cause, rs in failure_groups(rows):
        text, first = _group_summary(cause, rs)
        out.append(f"✗ {text}; e.g. {_where(first)}: {first.get('detail', '')}; reproduce: {first.get('reproduce', '')}")
    return "\n".join(out)


def render_verdict_md(rows):
    """The report's first screen: the matrix, then the failures grouped by root cause."""
    cells, unrun = _split_unrun(matrix_cells(rows))
    cols = [c for c in MATRIX_DTYPES + (ANY,) if any(cells[op][c][1] for op in cells)]
    out = ["## Verdict", "",
           "One row per op: values, first and second derivatives, special values, conventions, dtype and API "
           "checks; ✓ with the worst max ulp of the values (or the unit the case is budgeted in), ✗ with the "
           "largest failing figure (`grad`, `grad²`: a derivative; `special value`, `convention`, `dtype`, `check`: "
           "what else failed) and (+n) the number of other failing checks; (known): expected failures.", "",
           "| op | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    out += [f"| `{op}` | " + " | ".join(cells[op][c][1] or " " for c in cols) + " |" for op in cells]
    if unrun:
        out += ["", f"Not provided or skipped (see \"Skipped\"): {', '.join(f'`{op}`' for op in unrun)}."]
    groups = failure_groups(rows)
    n_pass = sum(1 for r in _judged(rows) if r["passed"])
    out += ["", f"{n_pass} checks passed, {sum(len(g) for _, g in groups)} failing tests"
            + (", grouped by root cause:" if groups else ".")]
    for cause, rs in groups:
        text, first = _group_summary(cause, rs)
        out += [f"- **{cause}**: {text}; e.g. {_where(first, '`')}: {first.get('detail', '')}  ",
                f"  reproduce: `{first.get('reproduce', '')}`"]
    return out


def _failure_detail_md(rows):
    out = []
    for cause, rs in failure_groups(rows):
        out += ["", f"### {cause}: {CAUSES[cause]}", ""]
        out += [f"- `{r['case']}` {r['kind']} {r['dtype']} {r['device']}: {r.get('detail', '')} "
                f"(`{r.get('reproduce', '')}`)" for r in rs]
    warn = sorted({(r["case"], r.get("detail", "")) for r in rows if r["kind"] == "warning"})
    if warn:
        out += ["", "### Warnings raised by the implementation under test (recorded, not errors)", ""]
        out += [f"- `{c}`: {d}" for c, d in warn]
    return (["", "## Failures by root cause"] + out) if out else []


def write_report(directory, rows, header: dict, sections: dict | None = None):
    """Write ``report.json`` and ``report.md`` (and the self-contained ``report.html``) to
    ``directory``; ``sections``: more lists to show, by title.  Returns the JSON and Markdown paths."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    lines = [f"{k}: {v}" for k, v in header.items()]
    md = render_markdown(rows, lines, sections=sections)
    for name, text in (("report.json", json.dumps({"header": header, "rows": sort_rows(rows),
                                                   "sections": sections or {}}, indent=1,
                                                  sort_keys=True, default=float) + "\n"),
                       ("report.md", md)):
        tmp = d / f".{name}.{os.getpid()}.tmp"  # a reader sees the old file or the new one, never a part
        tmp.write_text(text)
        os.replace(tmp, d / name)
    return d / "report.json", d / "report.md"
