"""The ``edgecls`` command. Each command parses its arguments, then calls one plain function.

Heavy imports (TensorFlow) happen inside the commands that need them, so
``edgecls --help`` and ``edgecls recipes`` start fast. A user's mistake is one
``error:`` line on stderr (a recipe's several mistakes: one line each) and exit
code 2 (usage, recipe) or 1 (anything else); a bug keeps its traceback.
"""
from __future__ import annotations

import json
import logging
import os
import sys

import click

from edgecls import __version__
from edgecls.errors import EdgeclsError, UsageError

log = logging.getLogger("edgecls")


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s", stream=sys.stderr)
    # TensorFlow's Python logger repeats warnings we already turn into one clear line.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgecls")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars (they are drawn on a terminal only).")
def cli(verbose: bool, quiet: bool) -> None:
    """edgecls: train image classifiers from recipes, compress them, and measure them on edge devices."""
    _setup_logging(verbose)
    if quiet:
        from edgecls.progress import set_quiet

        set_quiet(True)


def _print_metrics(report: dict, title: str) -> None:
    keys = ["accuracy", "top5_accuracy", "macro_precision", "macro_recall", "macro_f1", "ece"]
    click.echo(title)
    for key in keys:
        if key in report:
            click.echo(f"  {key:<16} {report[key]:.4f}")
    if "num_examples" in report:
        click.echo(f"  {'test images':<16} {report['num_examples']}")


@cli.command()
@click.argument("recipe")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a recipe value, typed by the schema (repeatable), e.g. --set train.epochs=3.")
@click.option("--run-dir", type=click.Path(file_okay=False), help="Run directory [default: runs/<recipe name>].")
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its last checkpoint.")
@click.option("--force", is_flag=True, help="Discard an existing train/ and start over.")
@click.option("--worker-hosts", metavar="H:P,H:P,...", help="Train with MultiWorkerMirroredStrategy on these workers.")
@click.option("--task-index", type=int, default=None, help="This worker's index in --worker-hosts (0 is the chief).")
def train(recipe: str, overrides: tuple[str, ...], run_dir: str | None, resume: bool, force: bool,
          worker_hosts: str | None, task_index: int | None) -> None:
    """Train RECIPE (a file, or the name of a bundled recipe) into its run directory."""
    if (worker_hosts is None) != (task_index is None):
        raise UsageError("--worker-hosts and --task-index go together")
    if worker_hosts is not None:
        from edgecls.train.strategy import worker_hosts_config

        os.environ["TF_CONFIG"] = worker_hosts_config(worker_hosts, task_index)
        overrides = (*overrides, "train.strategy=multi_worker", "train.cluster=tf_config")
    from edgecls import api

    with api.checked(recipe, overrides) as rec:  # before the line that says training starts; checked once
        run = api.run_for(rec, run_dir)
        log.info("training '%s' into %s", rec.name, run.root)
        record = api.train(rec, run, resume=resume, force=force)
    _print_metrics(record.metrics, f"test metrics ({run.train_metrics}):")


def _quality_options(f):
    """What bench measures besides top-1 and latency (bench and run take the same options)."""
    f = click.option("--explain-images", type=int, default=8, show_default=True, metavar="N",
                     help="Test images whose occlusion maps give the drift report's explanation agreement (0: none).")(f)
    f = click.option("--severities", default=None, metavar="1,3,5",
                     help="Corruption severities, 1 to 5 [default with --corruptions: 1,3,5].")(f)
    return click.option("--corruptions", default=None, metavar="NAME,...|all",
                        help="Also score each variant on corrupted test images (ImageNet-C): gaussian_noise, "
                             "gaussian_blur, jpeg, brightness, contrast, pixelate.")(f)


@cli.command()
@click.argument("run_dir", required=False, type=click.Path(file_okay=False))
@click.option("--device", default="local", show_default=True, help="Device recipe: a name in devices/ or a path.")
@click.option("--threads", default=None, metavar="1,2,4", help="Thread counts [default: the device recipe's].")
@click.option("--runs", type=click.IntRange(min=1), default=None, help="Timed runs [default: the device recipe's].")
@click.option("--warmup", type=click.IntRange(min=0), default=None, help="Warm-up runs [default: the device recipe's].")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Report folder [default: RUN_DIR/bench/<device>].")
@click.option("--compare", "compare", multiple=True, type=click.Path(), metavar="DIR",
              help="Merge bench/<device> reports (repeat, or list after the flag) into one table and plot.")
@_quality_options
@click.argument("more", nargs=-1, type=click.Path())
def bench(run_dir, device, threads, runs, warmup, out, compare, more, corruptions, severities, explain_images) -> None:
    """Score every exported variant of RUN_DIR for accuracy and latency on a device; table, CSV, Pareto plot."""
    from edgecls import api
    from edgecls.bench import compare_reports, format_table

    if compare:
        report = compare_reports([*compare, *([run_dir] if run_dir else []), *more], out)
        click.echo(format_table(report["rows"], with_device=True))
        return
    if not run_dir or more:
        raise UsageError("usage: edgecls bench RUN_DIR --device NAME, or edgecls bench --compare DIR DIR...")
    _show_bench(api.bench(run_dir, device, threads=threads, runs=runs, warmup=warmup, out_dir=out,
                          corruptions=corruptions, severities=severities, explain_images=explain_images))


def _show_bench(report: dict) -> None:
    """The table, where the report and plot are, and exit 1 when a row failed (bench and run)."""
    from edgecls.bench.report import format_table

    click.echo(format_table(report["rows"]))
    plots = report.get("plots") or {}
    plot = (f"plot: {report['out_dir']}/{plots['pareto']}" if plots.get("pareto") else
            f"no plot: {plots.get('skipped') or 'no row was measured'}")
    click.echo(f"report: {report['out_dir']}/report.json; {plot}")
    if (report.get("drift") or {}).get("comparisons"):
        from edgecls.bench.drift import drift_summary

        click.echo(f"What compression changed besides top-1 ({report['out_dir']}/drift.md):")
        for line in drift_summary(report["drift"]):
            click.echo(f"  {line}")
    if not report["complete"]:
        raise EdgeclsError(f"{report['rows_failed']} of {report['rows_total']} rows failed; "
                           "the status column says why")


@cli.command("run")
@click.argument("recipe")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe value (repeatable).")
@click.option("--run-dir", type=click.Path(file_okay=False), help="Run directory [default: runs/<recipe name>].")
@click.option("--device", default="local", show_default=True,
              help="Device recipe (name in devices/ or a path) to benchmark on; 'none' stops after export.")
@_quality_options
def run_cmd(recipe: str, overrides: tuple[str, ...], run_dir: str | None, device: str, corruptions, severities,
            explain_images) -> None:
    """Train, compress, export and benchmark RECIPE, skipping stages that are already complete."""
    from edgecls import api

    report = api.run_all(recipe, run_dir, overrides=overrides, device=None if device == "none" else device,
                         corruptions=corruptions, severities=severities, explain_images=explain_images)
    if isinstance(report, dict):
        _show_bench(report)
    elif hasattr(report, "variants"):
        _print_variants(report)


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--stage", "stages", multiple=True, help="Run only this stage (repeatable).")
@click.option("--force", is_flag=True, help="Run stages again even if their output exists.")
def compress(run_dir: str, stages: tuple[str, ...], force: bool) -> None:
    """Run the recipe's compress: stages (prune, cluster, QAT) on a trained RUN_DIR."""
    from edgecls import api

    records = api.compress(run_dir, stages=stages, force=force)
    click.echo(f"{'stage':<16} {'kind':<9} {'accuracy':>8} {'sparsity':>8}  model")
    for name, r in records.items():
        click.echo(f"{name:<16} {r.kind:<9} {r.accuracy:>8.4f} {r.metrics.get('sparsity', 0):>8.2%}  {r.path}")


@cli.command("export")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--variant", "variants", multiple=True, help="Export only this variant (repeatable).")
@click.option("--force", is_flag=True, help="Convert again even if the file exists.")
def export_cmd(run_dir: str, variants: tuple[str, ...], force: bool) -> None:
    """Convert RUN_DIR's models to the recipe's TFLite variants, with metadata and parity checks."""
    from edgecls import api

    _print_variants(api.export(run_dir, variants=variants, force=force))


def _print_variants(report) -> None:
    calibrated = any(e.calibration for e in report.variants)
    click.echo(f"{'variant':<16} {'mode':<8} {'source':<12} {'size':>9} {'gzip':>9} {'accuracy':>8} "
               f"{'agree':>6} {'max|diff|':>9} {'int-only':>8}  io" + ("  calibration" if calibrated else ""))
    for e in report.variants:
        cal = e.calibration or {}
        note = (f"  T {cal['temperature']:.4g}, ECE {cal['ece_before']:.4f} -> {cal['ece_after']:.4f}"
                if cal.get("temperature") is not None else "")
        if e.target == "micro" and e.arena_bytes is not None:
            note += (f"  micro: arena {e.arena_bytes:,} B, TFLite Micro agrees {e.micro_agreement:.3f}, "
                     f"{' '.join((e.micro or {}).get('sources', []))}")
        if e.target == "onnx":
            note += f"  onnx: {e.path}"
        if e.float_layers:
            fl, cost = e.float_layers, e.float_layers.get("cost") or {}
            note += (f"  float layers: {', '.join(fl.get('layers', [])) or 'none'}"
                     + ("  (accuracy target NOT met)" if fl.get("spec") == "auto" and not fl.get("target_met")
                        else "")
                     + (f" (int8 {cost['int8_accuracy']:.4f} -> {cost['accuracy']:.4f}; size x{cost['size_ratio']}, "
                        f"latency x{cost['latency_ratio']} here)" if cost.get("int8_accuracy") is not None else ""))
        click.echo(f"{e.name:<16} {e.mode:<8} {e.source:<12} {e.size_bytes:>9,} {e.gzip_bytes:>9,} "
                   f"{e.accuracy:>8.4f} {e.top1_agreement:>6.3f} {e.max_abs_diff:>9.4f} "
                   f"{'yes' if e.fully_integer else 'no':>8}  {e.input_dtype}/{e.output_dtype}{note}")


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--variant", required=True, help="An int8 export variant of the recipe.")
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
def quantdebug(run_dir: str, variant: str, as_json: bool) -> None:
    """Which layers int8 quantization hurts: error per layer of VARIANT's source model, the worst first.

    Writes RUN_DIR/export/VARIANT.quantdebug.json and .png, and suggests layers for float_layers."""
    from edgecls import api
    from edgecls.export.quantdebug import format_table

    record = api.quantdebug(run_dir, variant)
    click.echo(json.dumps(record, indent=2) if as_json else format_table(record))


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.argument("inputs", nargs=-1, required=True, metavar="IMAGE_OR_DIR...")
@click.option("--variants", "variants", multiple=True, metavar="float32,int8,...",
              help="Models to explain [default: every exported variant (occlusion); train and every compress "
                   "stage (gradcam)]. The float model 'train' is always the reference.")
@click.option("--method", default="occlusion", show_default=True, metavar="occlusion|gradcam",
              help="occlusion: any .tflite variant (and the float model); gradcam: Keras models only.")
@click.option("--layer", default=None, metavar="NAME",
              help="Grad-CAM's feature layer [default: the last feature map larger than 1x1].")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Output folder [default: RUN_DIR/explain].")
@click.option("--json", "as_json", is_flag=True, help="Print the index (index.json) as JSON.")
def explain(run_dir: str, inputs: tuple[str, ...], variants: tuple[str, ...], method: str, layer: str | None,
            out: str | None, as_json: bool) -> None:
    """Saliency maps of RUN_DIR's models for images: a PNG panel and a JSON record per image, and how much each
    model's map agrees with the float model's (Spearman rank correlation, IoU of the top 20 %)."""
    from edgecls import api

    index = api.explain(run_dir, inputs, variants=variants, method=method, layer=layer, out_dir=out)
    if as_json:
        click.echo(json.dumps(index, indent=2))
    else:
        click.echo(f"{'model':<16} {'kind':<7} {'source':<12} {'rank corr':>9} {'top20 IoU':>9} {'top-1 agree':>11}")
        for name, v in index["variants"].items():
            cells = [("-" if v[k] is None else f"{v[k]:.3f}") for k in ("rank_correlation", "top20_iou",
                                                                          "top1_agreement")]
            click.echo(f"{name:<16} {v['kind']:<7} {v['source']:<12} {cells[0]:>9} {cells[1]:>9} {cells[2]:>11}")
        click.echo(f"{index['images']} image(s), {index['method']}: panels and records in {index['out_dir']}")
    for failure in index["failed"]:  # one line each; the other images' outputs are written
        click.echo(f"error: {failure['error']}", err=True)
    if index["failed"]:
        raise SystemExit(1)


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def status(run_dir: str, as_json: bool) -> None:
    """Every stage, variant and bench report of RUN_DIR: done, stale (and why), missing or failed.

    Exit code 0 when everything is done, 3 when something is stale, missing or failed.
    """
    from edgecls import api

    rows = api.status(run_dir)
    if as_json:
        for row in rows:
            click.echo(json.dumps(row.to_json()))
    else:
        width = max(len(r.name) for r in rows)
        for r in rows:
            why = f"  ({r.why})" if r.why else ""
            click.echo(f"{r.kind:<8} {r.name:<{width}}  {r.state:<7}  {r.path}{why}")
    if any(r.state != "done" for r in rows):
        raise SystemExit(3)


def _classify_options(fn):
    """classify's options as click options, from the table the zipapp's argparse CLI is built from.

    They collect text; ``resolve`` (edgecls.runtime.options) converts and checks it, so both CLIs refuse a bad
    value with the same one line.
    """
    from edgecls.runtime.options import CLASSIFY

    for o in reversed(CLASSIFY):
        if o.kind == "flag":
            fn = click.option(o.flag, o.dest, is_flag=True, default=False, help=o.help_text)(fn)
        else:
            fn = click.option(o.flag, o.dest, type=click.Choice(o.choices) if o.choices else str,
                              default=None if o.default is None else str(o.default), metavar=o.metavar,
                              help=o.help_text)(fn)
    return fn


@cli.command()
@click.argument("model")
@click.argument("inputs", nargs=-1, metavar="[IMAGE_OR_DIR]...")
@_classify_options
def classify(model: str, inputs: tuple[str, ...], **options) -> None:
    """Classify images, .npy arrays and folders (or --camera frames) with a .tflite MODEL; no TensorFlow needed."""
    from edgecls.runtime.cli import classify_command
    from edgecls.runtime.options import CLASSIFY, resolve

    code = classify_command(model, inputs, resolve(CLASSIFY, options), sys.stdout, sys.stderr)
    if code:
        raise SystemExit(code)  # some inputs failed; each already printed its one "error:" line


@cli.command()
@click.argument("model")  # a plain string: the model reader says what is wrong with it in one line
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(model: str, as_json: bool) -> None:
    """Inputs, outputs, quantization, metadata, op counts and size of a .tflite MODEL (no TensorFlow needed)."""
    import dataclasses

    from edgecls.runtime.metadata import read_metadata
    from edgecls.runtime.modelfile import read_model_summary

    from edgecls.export.micro import micro_summary

    data = read_model_summary(model)
    meta = read_metadata(model)
    data["metadata"] = dataclasses.asdict(meta) if meta else None
    with open(model, "rb") as fh:  # read_model_summary has checked it is a readable model file
        data["micro"] = micro_summary(fh.read())
    if as_json:
        click.echo(json.dumps(data, indent=2, default=list))
        return
    click.echo(f"{model}: {data['size']:,} bytes, {data['subgraphs']} subgraph(s)")
    for kind in ("inputs", "outputs"):
        for t in data[kind]:
            q = f"  scale {t['scale']} zero point {t['zero_point']}" if t.get("scale") is not None else ""
            click.echo(f"  {kind[:-1]:<6} {t['name']}: {t['dtype']} {t['shape']}{q}")
    if meta:
        labels = ", ".join(meta.labels[:5]) + (", ..." if len(meta.labels) > 5 else "")
        click.echo(f"  metadata: {meta.name} v{meta.version}; {len(meta.labels)} labels ({labels}); {meta.color_space}, "
                   f"mean {list(meta.mean)}, std {list(meta.std)}; output {meta.output_kind}; resize {meta.resize}")
    else:
        click.echo("  metadata: none")
    float_ops = ", ".join(data["float_ops"]) or "none (fully integer)"
    click.echo(f"  float ops: {float_ops}")
    click.echo("  ops: " + ", ".join(f"{k} x{v}" for k, v in data["ops"].items()))
    micro = data["micro"]
    if not micro["ops_supported"]:
        click.echo(f"  TFLite Micro: no kernel for {', '.join(micro['unsupported'])}")
    elif micro.get("runs") is False:
        click.echo(f"  TFLite Micro cannot run it: {micro['reason']}")
    else:
        arena = f"arena {micro['arena_bytes']:,} bytes" if micro.get("arena_bytes") else micro.get("arena_note", "")
        click.echo(f"  TFLite Micro: every op has a kernel; {arena}")


@cli.command()
@click.argument("recipe")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe value.")
@click.option("--show", is_flag=True, help="Print the resolved recipe.")
@click.option("--device", default=None, help="Also check this device recipe (a name in devices/ or a path).")
def validate(recipe: str, overrides: tuple[str, ...], show: bool, device: str | None) -> None:
    """Check RECIPE: keys, types, ranges, the model name, then what it points at (data paths and classes,
    weights, backbone run). Prints 'ok' or every mistake, one line each."""
    from edgecls.recipe import recipe_to_yaml
    from edgecls.recipe.preflight import load_checked

    rec = load_checked(recipe, overrides, device=device)
    if show:
        click.echo(recipe_to_yaml(rec), nl=False)
    click.echo(f"ok: {recipe} ({rec.name}: {rec.model.label} on {rec.data.source})")


@cli.command()
def recipes() -> None:
    """List the bundled recipes with their descriptions."""
    from edgecls.recipe import list_recipes

    _print_listing(list_recipes(), "no recipes found (looked in ./recipes and the bundled folder)")


@cli.command()
def devices() -> None:
    """List the device recipes (./devices, then the bundled ones) with their descriptions."""
    from edgecls.devices import list_devices

    _print_listing(list_devices(), "no device recipes found (looked in ./devices and the bundled folder)")


def _print_listing(rows: list, empty: str) -> None:
    """(name, path, description) rows as two columns, or ``empty``."""
    width = max((len(name) for name, _, _ in rows), default=4)
    for name, _, desc in rows:
        click.echo(f"{name:<{width}}  {desc}")
    if not rows:
        click.echo(empty)


@cli.command()
@click.argument("pattern", default="*")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
@click.option("--input-size", type=int, default=None, help="Parameters and MACs at this input size (square).")
@click.option("--classes", type=int, default=10, show_default=True, help="Classes for the parameter count.")
@click.option("--verify", is_flag=True, help="Build every listed net and check the table's figures (slow).")
def models(pattern: str, as_json: bool, input_size: int | None, classes: int, verify: bool) -> None:
    """List registered models matching PATTERN (fnmatch, e.g. 'mobilenet*'): name, family, parameters, MACs, and
    which keras.applications model's ImageNet weights `model.weights: imagenet` loads."""
    from edgecls.models.catalog import model_rows

    rows = model_rows(pattern, input_size=input_size, classes=classes, verify=verify)
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
        return
    click.echo(f"{'name':<20} {'family':<14} {'params':>11} {'MACs':>14}  {'input':<11} {'QAT':<4} "
               f"{'pretrained':<18} description")
    for r in rows:
        size = "x".join(map(str, r["input"]))
        qat = "yes" if r["qat"] else "no*"
        click.echo(f"{r['name']:<20} {r['family']:<14} {r['params']:>11,} {r['macs']:>14,}  {size:<11} {qat:<4} "
                   f"{r['pretrained'] or '-':<18} {r['description']}")
    notes = [r for r in rows if not r["qat"]]
    for r in notes:
        click.echo(f"* {r['name']}: PTQ only: {r['qat_note']}")
    if verify:  # model_rows raised if a figure were wrong
        click.echo(f"verified: {len(rows)} net(s) built; parameters and MACs match the table")


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the group, turning EdgeclsError into one line and its exit code."""
    try:
        cli.main(args=argv, prog_name="edgecls", standalone_mode=False)
    except EdgeclsError as err:
        for line in str(err).splitlines() or [""]:  # several mistakes (a recipe's): one "error:" line each
            click.echo(f"error: {line}", err=True)
        if err.hard_exit:  # TensorFlow threads wait on peers that never come: leave now
            sys.stderr.flush()
            os._exit(err.exit_code)
        return err.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as err:
        err.show()
        return err.exit_code
    except SystemExit as exit_:
        return int(exit_.code or 0)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
