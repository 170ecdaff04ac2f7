"""ResNet-8 at 32x32, int8, for TensorFlow Lite Micro: model bytes and measured arena vs MLPerf Tiny's reference.

    python benchmarks/micro.py [--out runs/bench-micro] [--epochs 15] [--count 4500] [--reference PATH] [--set K=V ...]

Trains edgecls's ``resnet8`` on procedural RGB shapes at 32 px (the bundled shapes
recipe's 6 classes; no download: CIFAR-10 is not fetched) through the public API (``edgecls.train``,
``edgecls.export``: the export stage with ``target: micro``, which checks the
ops, measures the arena with the real tflite-micro interpreter, runs the test
split through it and writes the .cc/.h), then prints its figures next to the
MLPerf Tiny image-classification reference (ResNet-8 on CIFAR-10, int8):

- model bytes: ``pretrainedResnet_quant.tflite``, 98,496 bytes, in mlcommons/tiny
  benchmark/training/image_classification/trained_models/ (commit 1bbcf37fac1b0c4be0bada2d7ddfb1e0bb4cb6a0,
  sha256 3c002613d1b2475eb51dd78dfb85a546c8ae658dee71cf6ade43b022fe205415);
- arena: MLPerf Tiny publishes no measured arena for it. Its reference submission
  configures ``kTensorArenaSize = 100 * 1024`` (102,400 bytes;
  benchmark/reference_submissions/image_classification/submitter_implemented.cpp, commit
  19d14c280b14c5cb3e302f104e12466d78ccb70d), a buffer size, not a minimum. The minimum of that
  same .tflite, measured here with edgecls.export.micro.measure_arena (tflite-micro
  0.dev20261023182759-g8f6596d, x86-64), is REFERENCE_MEASURED_ARENA; ``--reference PATH`` to
  that file measures it again with the installed tflite-micro.

The 6 shape classes against CIFAR-10's 10 take 4 x 65 parameters off the final Dense;
the backbone (16/32/64 filters, three residual stacks) is the reference's.
A run directory is reused: stages whose records are current are skipped.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import edgecls  # noqa: E402 - after the path, so the checkout's edgecls is measured

REFERENCE_BYTES = 98_496
REFERENCE_CONFIGURED_ARENA = 100 * 1024
REFERENCE_MEASURED_ARENA = 55_984  # measure_arena on pretrainedResnet_quant.tflite, tflite-micro g8f6596d, x86-64
REFERENCE_SPLIT = (49_152, 6_832)  # its planned (activations) and persistent parts, same measurement

RECIPE = """\
name: resnet8-micro
description: ResNet-8 at 32 px (MLPerf Tiny image-classification backbone) on procedural shapes, int8 for TFLite Micro
seed: 0
data:
  source: shapes
  options:
    image_size: 32
    classes: [circle, square, triangle, star, cross, ring]
    count: {count}
    seed: 0
  image_size: 32
  channels: 3
  normalize: {{mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5]}}
  splits: {{validation: 0.1, test: 0.15}}
  augment:
    flip: horizontal
model:
  name: resnet8
train:
  epochs: {epochs}
  batch_size: 64
  optimizer: {{name: adam, learning_rate: 0.005}}
  schedule: {{name: cosine, warmup_epochs: 1}}
export:
  - {{name: int8_micro, source: train, mode: int8, input_type: int8, output_type: int8, target: micro}}
"""


def metadata_bytes(model: bytes) -> int:
    """Bytes edgecls's TFLite metadata takes (the TFLITE_METADATA buffer and the labels zip after the
    flatbuffer); the reference model carries none of it, and TFLite Micro never reads it."""
    import io
    import zipfile

    from edgecls.runtime.modelfile import load_model

    m = load_model(model).model
    size = sum(m.Buffers(m.Metadata(i).Buffer()).DataLength() for i in range(m.MetadataLength())
               if m.Metadata(i).Name() == b"TFLITE_METADATA")
    try:
        with zipfile.ZipFile(io.BytesIO(model)) as zf:
            size += len(model) - min(info.header_offset for info in zf.infolist())
    except zipfile.BadZipFile:
        pass
    return size


def _kb(n) -> str:
    return "n/a" if n is None else f"{n:,} B ({n / 1024:.1f} KiB)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-micro")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--count", type=int, default=4500, help="procedural images (all splits)")
    ap.add_argument("--reference", type=Path, help="MLPerf Tiny's pretrainedResnet_quant.tflite, to measure its arena")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="K=V")
    args = ap.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    recipe = args.out / "resnet8-micro.yaml"
    recipe.write_text(RECIPE.format(count=args.count, epochs=args.epochs))
    run = args.out / "run"
    t0 = time.perf_counter()
    edgecls.train(recipe, run, overrides=args.overrides, resume=True)
    t1 = time.perf_counter()
    edgecls.export(run)
    t2 = time.perf_counter()
    report = json.loads((run / "export" / "export.json").read_text())
    v = next(x for x in report["variants"] if x["name"] == "int8_micro")
    micro = v.get("micro") or {}

    ref_arena, ref_split, ref_how = REFERENCE_MEASURED_ARENA, REFERENCE_SPLIT, "same method, recorded (docstring)"
    if args.reference:
        from edgecls.export.micro import measure_arena

        measured = measure_arena(args.reference.read_bytes())
        ref_arena, ref_how = measured["arena_bytes"], "same method, measured now"
        ref_split = (measured["arena_planned_bytes"], measured["arena_persistent_bytes"])

    meta = metadata_bytes((run / v["path"]).read_bytes())
    rows = [
        ("model bytes (.tflite)", _kb(v["size_bytes"]), _kb(REFERENCE_BYTES), "pretrainedResnet_quant.tflite"),
        ("  of which edgecls metadata", _kb(meta), _kb(0), "labels, normalization (TFLM ignores them)"),
        ("tensor arena, measured minimum", _kb(v.get("arena_bytes")), _kb(ref_arena), ref_how),
        ("  planned activations", _kb(micro.get("arena_planned_bytes")), _kb(ref_split[0]), "memory planner (head)"),
        ("  persistent", _kb(micro.get("arena_persistent_bytes")), _kb(ref_split[1]),
         "tensor/node structs, kernel data (tail; smaller on 32-bit)"),
        ("tensor arena, reference's buffer", "", _kb(REFERENCE_CONFIGURED_ARENA),
         "kTensorArenaSize in submitter_implemented.cpp (configured, not measured)"),
    ]
    print(f"\nResNet-8, 32x32x3, int8 in/out, TFLite Micro (tflite-micro {micro.get('tflm_version', '?')})")
    print(f"{'':34} {'edgecls resnet8':>26} {'MLPerf Tiny reference':>26}  source")
    for name, ours, ref, note in rows:
        print(f"{name:34} {ours:>26} {ref:>26}  {note}")
    print(f"\nops: {', '.join(micro.get('ops', []))}  ->  {micro.get('resolver', '?')}")
    if args.reference:  # the persistent part differs by what each graph has that the other has not
        from edgecls.export.micro import micro_ops

        ours, theirs = set(micro.get("ops", [])), set(micro_ops(args.reference.read_bytes())["ops"])
        why = (" (DEPTHWISE_CONV_2D: the in-graph normalization of raw pixels)"
               if "DEPTHWISE_CONV_2D" in ours - theirs else "")
        print(f"ops only in edgecls's graph: {', '.join(sorted(ours - theirs)) or '-'}{why}; "
              f"only in the reference: {', '.join(sorted(theirs - ours)) or '-'}")
    print(f"test split ({micro.get('images')} images): LiteRT accuracy {v['accuracy']:.4f}, "
          f"TFLite Micro accuracy {micro.get('tflm_accuracy', float('nan')):.4f}, "
          f"top-1 agreement {v.get('micro_agreement', float('nan')):.4f}")
    print(f"arena note: {micro.get('arena_note', '')}")
    print(f"sources: {', '.join(micro.get('sources', []))}")
    print(f"time: train {t1 - t0:.0f} s, export (incl. TFLM) {t2 - t1:.0f} s")
    for what, ours, ref in (("model bytes", v["size_bytes"], REFERENCE_BYTES),
                            ("model bytes less metadata", v["size_bytes"] - meta, REFERENCE_BYTES),
                            ("arena", v.get("arena_bytes"), ref_arena)):
        verdict = "n/a" if ours is None else (f"at or under (-{ref - ours:,} B)" if ours <= ref
                                              else f"over by {ours - ref:,} B ({(ours - ref) / ref:+.1%})")
        print(f"goal, {what} vs the reference: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
