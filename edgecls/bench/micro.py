"""``edgecls bench RUN --device <micro board>``: does each ``target: micro`` variant fit the board?

A microcontroller runs no Python and edgecls does not flash it, so nothing is run here: export already
ran every micro variant through the real TFLite Micro interpreter (its tensor arena, its accuracy on the
test split, its agreement with LiteRT; ``export.json``). A row compares those figures with the device
recipe's budgets: the model's bytes with the flash (``flash_kb`` less ``flash_reserved_kb``), the arena
with the RAM (``ram_kb`` less ``ram_reserved_kb``). A variant over a budget is a failed row saying which
budget and by how much. Latency stays empty: timing needs the board, and no figure is made up for it.
"""
from __future__ import annotations

import logging
from pathlib import Path

from edgecls.bench import latency as lat
from edgecls.devices.schema import DeviceRecipe
from edgecls.run import BenchRow, VariantRecord

log = logging.getLogger("edgecls.bench")

ACCURACY_ON = "host (tflite-micro)"  # export measured it with TFLite Micro's interpreter on this host
NO_TIMING = "latency needs the board"  # and no figure is made up for it
NO_PLOTS = ("a micro board has no latency without the board itself: no accuracy-latency plot (TFLite Micro's "
            "figures come from export.json)")


def _kib(n: int | float) -> str:
    return f"{n / 1024:.1f} KiB"


def _budget(dev: DeviceRecipe, which: str) -> str:
    total, reserved = getattr(dev, f"{which}_kb"), getattr(dev, f"{which}_reserved_kb")
    return f"{total - reserved} KiB" + (f" ({total} less {reserved} reserved)" if reserved else "")


def fit_row(entry: VariantRecord, dev: DeviceRecipe, model: Path | None, missing: str | None = None) -> dict:
    """One report row: the variant's model bytes and TFLite Micro arena against the board's budgets.

    ``model``: the .tflite file (its size is what goes to flash); ``missing``: why it is not there.
    The row's ``fits`` is True, False (a budget is exceeded) or None (a figure is missing)."""
    micro = entry.micro or {}
    arena = entry.arena_bytes if entry.arena_bytes is not None else micro.get("arena_bytes")
    size = model.stat().st_size if model is not None else entry.size_bytes
    flash, ram = dev.flash_budget_bytes, dev.ram_budget_bytes
    over, unknown = [], []
    if missing:
        unknown.append(missing)
    elif size > flash:
        over.append(f"model {_kib(size)} exceeds the flash budget {_budget(dev, 'flash')} by {_kib(size - flash)}")
    if arena is None:
        unknown.append("arena: export.json records no TFLite Micro arena for this variant (export it again with "
                       "tflite-micro installed: pip install 'edgecls[micro]')")
    elif arena > ram:
        over.append(f"arena {_kib(arena)} exceeds the RAM budget {_budget(dev, 'ram')} by {_kib(arena - ram)}")
    if over or unknown:
        status = "failed: " + "; ".join([*(f"budget: {o}" for o in over), *unknown, NO_TIMING])
    else:
        status = (f"ok: fits (model {_kib(size)} of {_budget(dev, 'flash')} flash, arena {_kib(arena)} of "
                  f"{_budget(dev, 'ram')} RAM); {NO_TIMING}")
    agreement = entry.micro_agreement if entry.micro_agreement is not None else micro.get("agreement")
    accuracy = micro.get("tflm_accuracy")
    version = micro.get("tflm_version")
    row = BenchRow(variant=entry.name, mode=entry.mode, delegate="tflite-micro", device=dev.name, threads=1,
                   size_bytes=size, accuracy_on=ACCURACY_ON, status=status,
                   accuracy=None if accuracy is None else round(float(accuracy), 6),
                   **{**lat.row_fields(None), "backend": f"tflite-micro {version}" if version else "tflite-micro"})
    return {**row.to_json(), "arena_bytes": arena, "flash_budget_bytes": flash, "ram_budget_bytes": ram,
            "fits": False if over else (None if unknown else True),
            "micro_agreement": None if agreement is None else round(float(agreement), 6),
            "images": micro.get("images"), "arena_note": micro.get("arena_note")}


def log_row(row: dict) -> None:
    if row["fits"]:
        log.info("bench: %s fits %s %s", row["variant"], row["device"], row["status"][len("ok: fits "):])
    else:
        log.warning("bench: %s on %s: %s", row["variant"], row["device"], row["status"])


def budgets(dev: DeviceRecipe) -> dict:
    """The board's figures as the report keeps them (its device_info)."""
    return {"flash_kb": dev.flash_kb, "ram_kb": dev.ram_kb, "flash_reserved_kb": dev.flash_reserved_kb,
            "ram_reserved_kb": dev.ram_reserved_kb, "flash_budget_bytes": dev.flash_budget_bytes,
            "ram_budget_bytes": dev.ram_budget_bytes}


def to_markdown(report: dict) -> str:
    """report.md of a micro board: budgets, which variants fit, and why latency is empty."""
    from edgecls.bench.report import is_ok, markdown_table

    info, rows = report["device_info"], report["rows"]
    lines = [f"# Fit of {report.get('recipe') or 'the run'} on {report['device']} (TFLite Micro)", "",
             f"- device: `{report['device']}` (micro): flash {info['flash_kb']} KiB, RAM {info['ram_kb']} KiB"
             + (f"; reserved for the application: flash {info['flash_reserved_kb']} KiB, RAM "
                f"{info['ram_reserved_kb']} KiB" if info["flash_reserved_kb"] or info["ram_reserved_kb"] else ""),
             f"- run: `{report.get('run_dir')}`; the variants exported with `target: micro`",
             "- fits: the model's bytes within the flash budget and the tensor arena TFLite Micro measured at "
             "export within the RAM budget; accuracy: TFLite Micro's on the test split, measured at export on this "
             "host; agreement: its top-1 agreement with LiteRT",
             *(f"- arena ({r['variant']}): {r['arena_note']}" for r in rows[:1] if r.get("arena_note")),
             "- latency: not measured; it needs the board (edgecls does not run models on a microcontroller)",
             f"- checked {report.get('created')}", ""]
    failed = [r for r in rows if not is_ok(r)]
    if failed:
        lines += [f"**INCOMPLETE: {len(failed)} of {len(rows)} variants do not fit or lack a figure** "
                  "(status column):"]
        lines += [f"- {r['variant']}: {r['status']}" for r in failed]
    else:
        lines += [f"All {len(rows)} variants fit."]
    lines += ["", markdown_table(rows), ""]
    return "\n".join(lines).rstrip() + "\n"
