"""The benchmark report: rows, the Pareto front, and report.json / report.csv / report.md.

One row per (variant, delegate, thread count). ``status`` is ``ok`` or
``failed: <step>: <reason>``; a report with any failed row has
``"complete": false``, and report.md says so at the top. Files are written
atomically, report.json last.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Iterable

from edgecls import fileio
from edgecls.bench.latency import plot_latency

CSV_COLUMNS = ("device", "variant", "mode", "delegate", "threads", "accuracy", "top5_accuracy", "macro_f1", "ece",
               "mean_average_precision", "mean_corruption_accuracy", "corruption_drop", "worst_slice_gap", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "init_ms", "size_bytes", "peak_rss_mb", "pareto", "status",
               "accuracy_on", "latency_source", "backend")


def plots_skipped(err: ImportError) -> dict:
    """What a report says instead of its plots when matplotlib is missing (it is in the `plot` extra)."""
    return {"skipped": f"matplotlib is not installed ({err}): pip install 'edgecls[plot]'"}


# A micro board's rows (edgecls.bench.micro) have these too; CSV and tables show them when a row does.
MICRO_CSV_COLUMNS = ("arena_bytes", "flash_budget_bytes", "ram_budget_bytes", "fits", "micro_agreement")


def is_ok(row: dict) -> bool:
    """``ok``, or ``ok: <note>`` (a micro board's row that fits, saying its latency needs the board)."""
    status = str(row.get("status"))
    return status == "ok" or status.startswith("ok:")


def _has_micro(rows: Iterable[dict]) -> bool:
    return any("fits" in r for r in rows)


def pareto_front(rows: Iterable[dict]) -> list[dict]:
    """Rows no other row beats: none has higher-or-equal accuracy at lower-or-equal latency, one strictly.

    Only complete rows (status ok, with accuracy and a latency) take part. Sorted by latency.
    """
    pts = [r for r in rows if is_ok(r) and r.get("accuracy") is not None and plot_latency(r) is not None]
    front = []
    for r in pts:
        a, t = r["accuracy"], plot_latency(r)
        dominated = any((o["accuracy"] >= a and plot_latency(o) <= t) and (o["accuracy"] > a or plot_latency(o) < t)
                        for o in pts if o is not r)
        if not dominated:
            front.append(r)
    return sorted(front, key=lambda r: (plot_latency(r), -r["accuracy"]))


def mark_front(rows: list[dict]) -> None:
    front = {id(r) for r in pareto_front(rows)}
    for r in rows:
        r["pareto"] = id(r) in front


def summarize(rows: list[dict]) -> dict:
    failed = [r for r in rows if not is_ok(r)]
    return {"complete": not failed and bool(rows), "rows_total": len(rows), "rows_failed": len(failed)}


def flat(row: dict) -> dict:
    """A row with latency_ms spread into p50_ms, p90_ms, p99_ms, mean_ms (for CSV and tables)."""
    out = {k: v for k, v in row.items() if k != "latency_ms"}
    for key, value in (row.get("latency_ms") or {}).items():
        out[f"{key}_ms"] = value
    return out


# --- text --------------------------------------------------------------------------------------------------

def _num(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _ms(value) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if value < 1000 else f"{value:.0f}"


# Quality columns shown only when some row has the figure (a benchmark without --corruptions has no
# corruption accuracy; a test split without slices has no gap): heading, row key.
_OPTIONAL = (("corr. acc", "mean_corruption_accuracy"), ("corr. drop", "corruption_drop"),
             ("slice gap", "worst_slice_gap"))


def _fits(row: dict) -> str:
    return {True: "yes", False: "NO"}.get(row.get("fits"), "?") if "fits" in row else ""


def _kib(value, fmt: str = ".1f") -> str:
    return _num(value / 1024 if value is not None else None, fmt)


def _micro_table(rows: list[dict], with_device: bool) -> tuple[list[str], list[list[str]]]:
    """A micro board's columns: sizes against budgets, whether it fits, TFLite Micro's accuracy (no latency)."""
    heads = (["device"] if with_device else []) + [
        "variant", "size KiB", "flash KiB", "arena KiB", "RAM KiB", "fits", "accuracy", "agreement", "status"]
    body = [([r.get("device", "")] if with_device else []) + [
        r["variant"], _kib(r.get("size_bytes")), _kib(r.get("flash_budget_bytes"), ".0f"),
        _kib(r.get("arena_bytes")), _kib(r.get("ram_budget_bytes"), ".0f"), _fits(r),
        _num(r.get("accuracy"), ".4f"), _num(r.get("micro_agreement"), ".4f"), r.get("status", "")] for r in rows]
    return heads, body


def table_rows(rows: list[dict], *, with_device: bool = False) -> tuple[list[str], list[list[str]]]:
    if rows and all("fits" in r for r in rows):
        return _micro_table(rows, with_device)
    micro = _has_micro(rows)  # --compare of a micro board with other devices: its columns too
    extra = [(h, k) for h, k in _OPTIONAL if any(r.get(k) is not None for r in rows)]
    heads = (["device"] if with_device else []) + [
        "variant", "delegate", "thr", "accuracy", "top-5", "macro-F1", "mAP", "ECE", *(h for h, _ in extra),
        "p50 ms", "p90 ms", "p99 ms", "mean ms", "init ms", "size KiB", "peak MiB",
        *(("arena KiB", "fits") if micro else ()), "front", "status"]
    body = []
    for r in rows:
        lat = r.get("latency_ms") or {}
        cells = ([r.get("device", "")] if with_device else []) + [
            r["variant"], str(r.get("delegate") or ""), str(r.get("threads", "")), _num(r.get("accuracy"), ".4f"),
            _num(r.get("top5_accuracy"), ".4f"), _num(r.get("macro_f1"), ".4f"),
            _num(r.get("mean_average_precision"), ".4f"), _num(r.get("ece"), ".4f"),
            *(_num(r.get(k), ".4f") for _, k in extra),
            _ms(lat.get("p50")), _ms(lat.get("p90")), _ms(lat.get("p99")), _ms(lat.get("mean")),
            _ms(r.get("init_ms")), _num(r["size_bytes"] / 1024 if r.get("size_bytes") is not None else None, ".1f"),
            _num(r.get("peak_rss_mb"), ".1f"), *((_kib(r.get("arena_bytes")), _fits(r)) if micro else ()),
            "*" if r.get("pareto") else "", r.get("status", "")]
        body.append(cells)
    return heads, body


_RIGHT = {"thr", "accuracy", "top-5", "macro-F1", "mAP", "ECE", "p50 ms", "p90 ms", "p99 ms", "mean ms", "init ms",
          "size KiB", "peak MiB", "flash KiB", "arena KiB", "RAM KiB", "agreement", *(h for h, _ in _OPTIONAL)}


def format_table(rows: list[dict], *, with_device: bool = False) -> str:
    """The terminal table (fixed-width columns)."""
    heads, body = table_rows(rows, with_device=with_device)
    widths = [max(len(h), *(len(row[i]) for row in body)) if body else len(h) for i, h in enumerate(heads)]
    lines = []
    for cells in [heads] + body:
        parts = [c.rjust(w) if h in _RIGHT else c.ljust(w) for c, w, h in zip(cells, widths, heads)]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def markdown_table(rows: list[dict], *, with_device: bool = False) -> str:
    heads, body = table_rows(rows, with_device=with_device)
    align = ["---:" if h in _RIGHT else "---" for h in heads]
    out = ["| " + " | ".join(heads) + " |", "| " + " | ".join(align) + " |"]
    for cells in body:
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(out)


def status_lines(report: dict) -> list[str]:
    if report.get("complete"):
        return [f"All {report['rows_total']} rows measured."]
    lines = [f"**INCOMPLETE: {report['rows_failed']} of {report['rows_total']} rows failed** (status column):"]
    for r in report["rows"]:
        if not is_ok(r):
            lines.append(f"- {r['variant']} (delegate {r.get('delegate')}, {r.get('threads')} threads): {r['status']}")
    return lines


def to_markdown(report: dict) -> str:
    info = report.get("device_info") or {}
    device = report["device"]
    what = ", ".join(str(v) for v in (info.get("model") or info.get("hostname"), info.get("system"),
                                      info.get("machine") or info.get("abi"),
                                      f"{info['cpu_count']} cores" if info.get("cpu_count") else None,
                                      f"Python {info['python']}" if info.get("python") else None,
                                      f"{info.get('backend')} {info.get('backend_version') or ''}".strip()
                                      if info.get("backend") else None) if v)
    lines = [f"# Benchmark of {report.get('recipe') or 'the run'} on {device}", "",
             f"- device: `{device}` ({report.get('connect')}){': ' + what if what else ''}",
             f"- run: `{report.get('run_dir')}`; test split: {report.get('test_images')} images; accuracy computed "
             f"on the {'device' if report.get('accuracy_on') == 'device' else 'host (the device has no Python)'}",
             f"- latency: {report.get('runs')} timed runs after {report.get('warmup')} warm-up runs, per thread "
             f"count; `front` marks the Pareto front (no other row is both more accurate and faster)",
             f"- measured {report.get('created')}", ""]
    lines += status_lines(report) + ["", markdown_table(report["rows"]), ""]
    if any((r.get("latency_ms") or {}).get("p50") is None and is_ok(r) for r in report["rows"]):
        lines += ["benchmark_model reports no percentiles: where p50 is `-`, the plot uses the mean.", ""]
    plots = report.get("plots") or {}
    if plots.get("pareto"):
        lines += [f"![accuracy against p50 latency]({plots['pareto']})", ""]
    for variant, name in (plots.get("confusion") or {}).items():
        lines += [f"- confusion matrix of {variant}: [{name}]({name})"]
    for variant, name in (plots.get("reliability") or {}).items():
        lines += [f"- reliability diagram of {variant}: [{name}]({name})"]
    for key, what in (("pr_curves", "precision-recall curves"), ("slices", "accuracy per slice (slices.md)"),
                      ("corruptions", "accuracy under corruption"), ("drift", "what compression changed (drift.md)")):
        if plots.get(key):
            lines += [f"- {what}: [{plots[key]}]({plots[key]})"]
    if plots.get("skipped"):
        lines += [f"Plots skipped: {plots['skipped']}"]
    if report.get("drift"):
        from edgecls.bench.drift import drift_markdown

        lines += ["", "## What compression changed besides top-1 (drift.md)", "",
                  drift_markdown(report["drift"], report.get("class_names") or [])]
    return "\n".join(lines).rstrip() + "\n"


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    columns = CSV_COLUMNS + (MICRO_CSV_COLUMNS if _has_micro(rows) else ())
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in flat(r).items()})
    return buf.getvalue()


def write_report(folder: str | Path, report: dict, *, stem: str = "report",
                 markdown: str | None = None) -> dict[str, Path]:
    """<stem>.csv, <stem>.md, then <stem>.json (each atomically: the json is the last to appear)."""
    folder = Path(folder)
    paths = {"csv": fileio.write_text(folder / f"{stem}.csv", to_csv(report["rows"])),
             "md": fileio.write_text(folder / f"{stem}.md", markdown if markdown is not None else to_markdown(report))}
    paths["json"] = fileio.write_json(folder / f"{stem}.json", report)
    return paths
