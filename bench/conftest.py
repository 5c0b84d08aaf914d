"""Shared benchmark reporting: a table of rates, per-core rates, ratios and budgets.

Any benchmark can join the table by filling `benchmark.extra_info`:

- ``items`` (required): units of work per call (options, events, rows...); rate = items / median.
- ``unit``: what an item is (default "items").
- ``threads``: threads the call used (default 1); the per-core rate divides by it.
- ``compare``: a key shared by rows measured side by side (e.g. "implied vol").
- ``baseline``: True on the peer row of a ``compare`` group; other rows get rate ratios to it.
- ``budget``: the minimum per-core rate promised (DESIGN.md §6); the table says whether met.
- ``budget_ratio``: the minimum ratio to the baseline promised.
- ``note``: free text (accuracy, sample size...).

The table is printed at the end of the run (medians: the machine is shared and noisy) and
written as Markdown to ``.benchmarks/rates.md`` (override with FLASHALPHA_BENCH_TABLE).
"""

from __future__ import annotations

import os
from pathlib import Path


def _rows(config):
    session = getattr(config, "_benchmarksession", None)
    if session is None:
        return []
    rows = []
    for bench in session.benchmarks:
        info = dict(bench.extra_info or {})
        if "items" not in info or bench.stats is None or getattr(bench, "has_error", False):
            continue
        median = bench.stats.median
        threads = int(info.get("threads", 1))
        rate = info["items"] / median if median > 0 else float("nan")
        rows.append(
            {
                "name": bench.name,
                "compare": info.get("compare", bench.group or ""),
                "baseline": bool(info.get("baseline", False)),
                "unit": info.get("unit", "items"),
                "items": info["items"],
                "threads": threads,
                "median": median,
                "rate": rate,
                "per_core": rate / threads,
                "budget": info.get("budget"),
                "budget_ratio": info.get("budget_ratio"),
                "note": info.get("note", ""),
            }
        )
    return rows


def _format_rate(value: float) -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.2f}{suffix}"
    return f"{value:.1f}"


def rates_table(rows) -> str:
    """Markdown table of the rows, grouped by `compare`, with ratios to each group's baseline."""
    lines = [
        "| group | benchmark | items | threads | median s | rate/s | per core/s | ratio | budget | note |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["compare"], []).append(row)
    for group, members in groups.items():
        baseline = next((r for r in members if r["baseline"]), None)
        for row in members:
            ratio = ""
            if baseline is not None and row is not baseline:
                ratio = f"{row['rate'] / baseline['rate']:.1f}x"
            elif row is baseline:
                ratio = "peer"
            budget = []
            if row["budget"] is not None:
                met = row["per_core"] >= row["budget"]
                budget.append(f"≥{_format_rate(row['budget'])}/core {'met' if met else 'MISSED'}")
            if row["budget_ratio"] is not None and baseline is not None and row is not baseline:
                met = row["rate"] / baseline["rate"] >= row["budget_ratio"]
                budget.append(f"≥{row['budget_ratio']:g}x {'met' if met else 'MISSED'}")
            lines.append(
                f"| {group} | {row['name']} | {row['items']} {row['unit']} | {row['threads']} | "
                f"{row['median']:.4g} | {_format_rate(row['rate'])} | "
                f"{_format_rate(row['per_core'])} | {ratio} | {'; '.join(budget)} | "
                f"{row['note']} |"
            )
    return "\n".join(lines)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    rows = _rows(config)
    if not rows:
        return
    table = rates_table(rows)
    terminalreporter.write_sep("=", "rates (medians; per core = rate / threads)")
    terminalreporter.write_line(table)
    target = Path(os.environ.get("FLASHALPHA_BENCH_TABLE", ".benchmarks/rates.md"))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(table + "\n")
        terminalreporter.write_line(f"(written to {target})")
    except OSError as error:  # a read-only checkout must not fail the run
        terminalreporter.write_line(f"(could not write {target}: {error})")
