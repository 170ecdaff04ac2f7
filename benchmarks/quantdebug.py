"""What int8 costs on a quantization-sensitive model, and what float_layers: auto wins back.

    python benchmarks/quantdebug.py [--recipe PATH] [--run-dir runs/bench-quantdebug] [--threads 1] [--runs 200]

The product measures itself: ``edgecls.train`` (a finished run is kept), ``edgecls.export`` (the recipe's
variants, default the bundled ``digits-vit``: float32, plain int8, and int8 with ``float_layers: auto``,
the quantization debugger's worst layers kept float, 1, 2, 4... until validation accuracy is within
``max_accuracy_drop`` of float) and ``edgecls.bench`` on this host (every variant timed side by side in
one run: one image per invoke, ``--threads`` threads). Prints test accuracy, size and p50 latency per
variant, then what the search tried and the debugger's ranking (``edgecls.quantdebug``).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import edgecls  # noqa: E402 - after the path, so the checkout's edgecls is measured

# The bundled int8-sensitive recipe: a ViT with 256 tokens (its comments say why int8 hurts it).
DEFAULT_RECIPE = ROOT / "edgecls" / "bundled" / "recipes" / "digits-vit.yaml"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--recipe", default=str(DEFAULT_RECIPE))
    ap.add_argument("--run-dir", default="runs/bench-quantdebug")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)

    from edgecls.export.quantdebug import format_table

    edgecls.train(args.recipe, args.run_dir, resume=True)
    exported = edgecls.export(args.run_dir)
    report = edgecls.bench(args.run_dir, "local", threads=[args.threads], runs=args.runs, warmup=20, plots=False)
    p50 = {r["variant"]: (r["latency_ms"] or {}).get("p50") for r in report["rows"]}
    print(f"\n{exported.recipe}: {len(report['class_names'])} classes, {report['test_images']} test images; "
          f"latency: edgecls bench on this host, 1 image, {args.threads} thread(s), {args.runs} runs")
    print(f"{'variant':<12} {'test acc':>9} {'size B':>10} {'p50 ms':>8}  float layers")
    for v in exported.variants:
        fl = ", ".join((v.float_layers or {}).get("layers", [])) or "-"
        print(f"{v.name:<12} {v.accuracy:9.4f} {v.size_bytes:>10,} {p50.get(v.name) or float('nan'):8.3f}  {fl}")
    f32 = next((v for v in exported.variants if v.mode == "float32"), None)
    plain = next((v for v in exported.variants if v.mode == "int8" and not v.float_layers), None)
    for sel in (v for v in exported.variants if v.float_layers):
        if f32 and plain and f32.accuracy > plain.accuracy:
            lost, won = f32.accuracy - plain.accuracy, sel.accuracy - plain.accuracy
            print(f"{sel.name}: int8 loses {100 * lost:.1f} pp on test; float_layers wins back {100 * won:.1f} pp "
                  f"({100 * won / lost:.0f} % of it), size {sel.size_bytes - plain.size_bytes:+,} B and p50 "
                  f"{(p50.get(sel.name) or 0) - (p50.get(plain.name) or 0):+.3f} ms against int8")
        print(format_table(sel.float_layers))
    if plain is not None:
        print(format_table(edgecls.quantdebug(args.run_dir, plain.name)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
