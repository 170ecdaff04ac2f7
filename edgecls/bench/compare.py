"""``edgecls bench --compare DIR...``: reports from several devices in one table and one plot.

Each DIR is a ``bench/<device>/`` folder (or its report.json). The merged rows
keep their device; the Pareto front is recomputed over all of them. Writes
compare.json, compare.csv, compare.md and pareto.png to the output folder
(default: ``compare/`` beside the first report's folder).
"""
from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Sequence

from edgecls import fileio
from edgecls.bench.report import mark_front, markdown_table, plots_skipped, summarize, write_report
from edgecls.errors import UsageError, first_line


def _report_path(item: str | os.PathLike) -> Path:
    path = Path(item)
    if path.is_dir():
        path = path / "report.json"
    if not path.is_file():
        raise UsageError(f"{item}: no report.json there (give bench/<device> folders that edgecls bench wrote)")
    return path


def compare_reports(paths: Sequence[str | os.PathLike], out_dir: str | os.PathLike | None = None, *,
                    plots: bool = True) -> dict:
    if len(paths) < 1:
        raise UsageError("--compare needs at least one bench/<device> folder")
    files = [_report_path(p) for p in paths]
    sources, rows = [], []
    for f in files:
        try:
            report = fileio.read_json(f)
        except (ValueError, UnicodeDecodeError) as err:  # cut short, or not JSON at all
            raise UsageError(f"{f}: not a readable report ({first_line(err)}); run edgecls bench again") from None
        if (not isinstance(report, dict) or not isinstance(report.get("rows"), list)
                or not all(isinstance(r, dict) for r in report["rows"])):
            raise UsageError(f"{f}: not an edgecls bench report (no list of rows); run edgecls bench again")
        device = report.get("device") or f.parent.name
        sources.append({"device": device, "report": str(f), "run_dir": report.get("run_dir"),
                        "recipe": report.get("recipe"), "complete": report.get("complete", False),
                        "created": report.get("created")})
        for r in report["rows"]:
            rows.append({**r, "device": r.get("device") or device})
    devices = list(dict.fromkeys(s["device"] for s in sources))
    out = Path(out_dir) if out_dir else files[0].parent.parent / "compare"
    mark_front(rows)
    merged = {"devices": devices, "sources": sources, "created": _dt.datetime.now(_dt.timezone.utc)
              .isoformat(timespec="seconds"), **summarize(rows), "rows": rows}
    merged["plots"] = {}
    if plots:
        try:
            from edgecls.bench.plots import pareto_plot

            path = pareto_plot(rows, out / "pareto.png", title=f"accuracy vs latency: {', '.join(devices)}",
                               group="device", label=("variant", "threads"))
            merged["plots"]["pareto"] = path.name if path else None
        except ImportError as err:  # pragma: no cover
            merged["plots"].update(plots_skipped(err))
    lines = [f"# Comparison of {len(devices)} device(s): {', '.join(devices)}", ""]
    for s in sources:
        lines.append(f"- `{s['device']}`: {s['report']} ({s.get('recipe') or 'run'}, {s.get('created')})"
                     + ("" if s["complete"] else " **INCOMPLETE report**"))
    lines += ["", markdown_table(rows, with_device=True), ""]
    if merged["plots"].get("pareto"):
        lines += [f"![accuracy against latency]({merged['plots']['pareto']})", ""]
    write_report(out, merged, stem="compare", markdown="\n".join(lines))
    merged["out_dir"] = str(out)
    return merged
