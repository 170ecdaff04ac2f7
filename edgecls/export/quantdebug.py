"""Which layers does int8 break, and does keeping them float win the accuracy back?

:func:`debug_layers` runs LiteRT's ``tf.lite.experimental.QuantizationDebugger`` on a raw-pixel Keras
model: every quantized op is run next to its float counterpart on the calibration images and its error
is measured. Layers are ranked as in the TensorFlow guide "Inspecting Quantization Errors with
Quantization Debugger": RMSE over the quantization scale (``sqrt(mean_squared_error) / scale``), with the
error's mean and standard deviation. Pure rounding gives 1/sqrt(12) = 0.29; the guide keeps layers above
0.7 in float (:data:`SUGGEST_ABOVE`).

:func:`selective_int8` converts int8 with some layers float (``float_layers`` in a recipe: Keras layer
name patterns, or ``auto``), and :func:`quantdebug` is ``edgecls quantdebug RUN --variant NAME``.
"""
from __future__ import annotations

import fnmatch
import io
import math
from typing import Callable, Sequence

import numpy as np

from edgecls.errors import EdgeclsError

ROUNDING_ONLY = 1.0 / math.sqrt(12.0)  # RMSE / scale of uniform rounding error: the floor any int8 layer has
SUGGEST_ABOVE = 0.7  # the guide's cut for "suspected layers"
MAX_SUGGESTED = 8


class QuantDebugError(EdgeclsError):
    """quantdebug cannot run on what was asked (a variant that is not int8, an unknown variant)."""


def debug_layers(model_pixels, representative: np.ndarray, *, per_channel: bool = True) -> list[dict]:
    """Per-op int8 error of ``model_pixels`` (raw-pixel input) on ``representative`` samples, worst first.

    Each row: ``layer`` (the Keras layer the op comes from when its name says so, else the tensor name),
    ``layers`` (every Keras layer fused into the op), ``tensor`` (the debugger's node name, what
    ``convert(float_layers=...)`` takes), ``op``, ``index`` (graph order), ``rmse_over_scale``,
    ``error_mean``, ``error_std``, ``max_abs_error``, ``scale``, ``zero_point``, ``elements``,
    ``selectable`` (whether float_layers patterns can name it: the source model's layers, not the
    pixel wrapper's gray conversion and normalization, nor an op no layer name reaches).
    """
    from edgecls.export.convert import quantization_debugger

    reps = np.asarray(representative, np.float32)
    debugger = quantization_debugger(model_pixels, reps, per_channel=per_channel)
    return _ranked(debugger, _node_rows(model_pixels, debugger))


def _ranked(debugger, nodes: list[dict]) -> list[dict]:
    """Run the debugger over its dataset and rank its layer statistics (see debug_layers)."""
    import csv

    from edgecls._tf import quiet_native_stderr

    with quiet_native_stderr(keep_python=True):
        debugger.run()
    dump = io.StringIO()
    debugger.layer_statistics_dump(dump)
    rows = []
    for stat in csv.DictReader(io.StringIO(dump.getvalue())):
        node = _match(stat["tensor_name"], stat["op_name"], nodes)
        scale = float(stat["scale"])
        mse = float(stat["mean_squared_error"])
        rows.append(dict(node, op=stat["op_name"],
                         rmse_over_scale=_num(math.sqrt(max(mse, 0.0)) / scale if scale > 0 else float("nan")),
                         error_mean=_num(stat["mean_error"]), error_std=_num(stat["stddev"]),
                         max_abs_error=_num(stat["max_abs_error"]), scale=_num(scale),
                         zero_point=int(float(stat["zero_point"])), elements=int(float(stat["num_elements"]))))
    rows.sort(key=lambda r: -r["rmse_over_scale"] if r["rmse_over_scale"] == r["rmse_over_scale"] else math.inf)
    return rows


def _num(x) -> float:
    return float(f"{float(x):.6g}")


WRAPPER_LAYERS = ("rgb_to_gray", "normalize")  # edgecls.export.convert.with_pixel_input's own layers


def _keras_layers(model) -> tuple[set[str], set[str]]:
    """(every layer name, nested models walked; the pixel wrapper's own layers, not the recipe model's)."""
    from edgecls._tf import keras

    names: set[str] = set()
    stack, nested = [model], False
    while stack:
        for layer in stack.pop().layers:
            if isinstance(layer, keras.Model):
                stack.append(layer)
                nested = True
            else:
                names.add(layer.name)
    top = {layer.name for layer in model.layers}
    return names, (top & set(WRAPPER_LAYERS)) if nested else set()


def _node_rows(model, debugger) -> list[dict]:
    """Each node of the debugger's calibrated model with the Keras layers its name mentions
    ("m/inner/block1_relu/Relu;m/inner/block1_conv/Conv2D" -> block1_relu, block1_conv); the converter
    lists the op's own layer last."""
    from edgecls.export.convert import debugger_nodes

    names, wrapper = _keras_layers(model)
    rows = []
    for index, (op, tensor) in enumerate(debugger_nodes(debugger)):
        found: list[str] = []
        for part in tensor.split(";"):
            for seg in part.split("/"):
                if seg in names and seg not in found:
                    found.append(seg)
        own = [n for n in found if n not in wrapper]
        rows.append({"index": index, "tensor": tensor, "node_op": op,
                     "layer": own[-1] if own else (found[-1] if found else tensor), "layers": own or found,
                     "selectable": bool(own)})
    return rows


def _match(dumped: str, op: str, nodes: list[dict]) -> dict:
    """The node a statistics row is about. The dump derives names from NumericVerify's output name and
    loses or keeps one trailing digit ("logits/MatMul2", "StatefulPartitionedCall:" for ":0")."""
    for node in nodes:
        t = node["tensor"]
        if node["node_op"] == op and (t == dumped or (t[:-1] == dumped and t[-1:].isdigit())):
            return {k: v for k, v in node.items() if k != "node_op"}
    return {"index": len(nodes), "tensor": dumped, "layer": dumped, "layers": [], "selectable": False}


def suggest(rows: Sequence[dict], *, above: float = SUGGEST_ABOVE, limit: int = MAX_SUGGESTED) -> list[str]:
    """Keras layer names to keep float: selectable rows over ``above`` RMSE/scale, worst first."""
    return [r["layer"] for r in _layer_ranking(rows) if r["rmse_over_scale"] > above][:limit]


def _nodes_for(nodes: Sequence[dict], patterns: Sequence[str]) -> tuple[list[str], list[str]]:
    """(node names, Keras layers) whose layers match any of ``patterns`` (fnmatch), graph order;
    ExportError naming a pattern that matches no layer."""
    from edgecls.export.convert import ExportError

    layers = sorted({n for r in nodes if r["selectable"] for n in r["layers"]})
    for p in patterns:
        if not any(fnmatch.fnmatchcase(n, p) for n in layers):
            some = ", ".join(layers[:10]) + (f" ... ({len(layers)} layers)" if len(layers) > 10 else "")
            raise ExportError(f"float_layers: pattern '{p}' matches no layer of the model; layers: {some}")
    return _select(nodes, lambda layer: any(fnmatch.fnmatchcase(layer, p) for p in patterns))


def _select(nodes: Sequence[dict], keep: Callable[[str], bool]) -> tuple[list[str], list[str]]:
    """(node names, Keras layers) of the selectable nodes one of whose layers ``keep`` accepts, graph order."""
    picked = [r for r in nodes if r["selectable"] and any(keep(n) for n in r["layers"])]
    return [r["tensor"] for r in picked], list(dict.fromkeys(n for r in picked for n in r["layers"] if keep(n)))


def selective_int8(model_pixels, representative, spec: tuple[str, ...] | str, *, per_channel: bool = True,
                   input_type: str = "float32", output_type: str = "float32",
                   evaluate: Callable[[bytes], float], float_accuracy: float, max_accuracy_drop: float = 0.005,
                   max_float_layers: int = 8) -> tuple[bytes, dict]:
    """int8 with some layers float. ``spec``: fnmatch patterns over Keras layer names (every op of a
    matching layer stays float), or "auto": the Keras layers of the debugger's worst ops, 1, 2, 4... of them,
    until ``evaluate(bytes)`` (the caller's: accuracy on the validation split) >= ``float_accuracy -
    max_accuracy_drop``, at most ``max_float_layers``. What auto keeps is what ``float_layers: [its layers]``
    keeps. One calibration serves the ranking and every conversion tried.

    Returns the bytes and the record: {"spec", "layers" (kept float), "nodes", "accuracy", "int8_accuracy",
    "float_accuracy", "target", "target_met", "size_bytes", "int8_size_bytes", "tried": [{"k" (layers),
    "layers", "nodes", "accuracy", "size_bytes"}...], "ranking"}. "auto" that never meets the target keeps
    the best accuracy tried (fewest layers on a tie) and says target_met: false.
    """
    from edgecls.export.convert import convert, quantization_debugger

    reps = np.asarray(representative, np.float32)
    debugger = quantization_debugger(model_pixels, reps, per_channel=per_channel)
    nodes = _node_rows(model_pixels, debugger)
    if spec != "auto":
        picked, layers = _nodes_for(nodes, tuple(spec))  # a bad pattern fails before any conversion
    rows = _ranked(debugger, nodes) if spec == "auto" else []

    def make(names: Sequence[str]) -> bytes:
        return convert(model_pixels, "int8", representative=reps, input_type=input_type, output_type=output_type,
                       per_channel=per_channel, float_layers=tuple(names), debugger=debugger)

    target = float_accuracy - max_accuracy_drop
    plain = make(())
    tried = [{"k": 0, "layers": [], "nodes": [], "accuracy": float(evaluate(plain)), "size_bytes": len(plain)}]
    blobs = {0: plain}
    if spec == "auto":
        # Whole Keras layers, worst op first: what auto keeps is what float_layers: [those names] keeps.
        ranked = list(dict.fromkeys(r["layer"] for r in rows if r["selectable"]))
        ks, k = [], 1
        while k < min(max_float_layers, len(ranked)):
            ks.append(k)
            k *= 2
        ks.append(min(max_float_layers, len(ranked)))
        for k in ks if tried[0]["accuracy"] < target else ():
            if k < 1 or k in blobs:
                continue
            top = set(ranked[:k])
            names, layers = _select(nodes, top.__contains__)
            blobs[k] = make(names)
            tried.append({"k": k, "layers": layers, "nodes": names, "accuracy": float(evaluate(blobs[k])),
                          "size_bytes": len(blobs[k])})
            if tried[-1]["accuracy"] >= target:
                break
        ok = [t for t in tried if t["accuracy"] >= target]
        best = ok[0] if ok else max(tried, key=lambda t: (t["accuracy"], -t["k"]))
        blob = blobs[best["k"]]
    else:
        blob = make(picked)
        best = {"k": len(layers), "layers": layers, "nodes": picked, "accuracy": float(evaluate(blob)),
                "size_bytes": len(blob)}
        tried.append(best)
    record = {"spec": spec if spec == "auto" else list(spec), "layers": best["layers"], "nodes": best["nodes"],
              "accuracy": best["accuracy"], "int8_accuracy": tried[0]["accuracy"],
              "float_accuracy": float(float_accuracy), "target": target, "target_met": best["accuracy"] >= target,
              "size_bytes": len(blob), "int8_size_bytes": len(plain), "tried": tried,
              "ranking": _layer_ranking(rows)[:max(max_float_layers, 8)]}
    return blob, record


def _layer_ranking(rows: Sequence[dict]) -> list[dict]:
    """Selectable Keras layers by their worst op: {"layer", "rmse_over_scale", "op"}."""
    seen: dict[str, dict] = {}
    for r in rows:
        if r["selectable"] and r["layer"] not in seen:
            seen[r["layer"]] = {"layer": r["layer"], "rmse_over_scale": r["rmse_over_scale"], "op": r["op"]}
    return list(seen.values())


def quantdebug(run, variant: str) -> dict:
    """``edgecls quantdebug RUN --variant NAME``: debug an int8 variant's source model on the images export
    calibrates it with; writes run.quantdebug(variant) (JSON, PNG) and returns the record."""
    from edgecls import fileio
    from edgecls.recipe import load_recipe

    recipe = load_recipe(run.recipe)
    names = [v.name for v in recipe.export]
    v = next((x for x in recipe.export if x.name == variant), None)
    if v is None:
        raise QuantDebugError(f"quantdebug: no export variant named '{variant}' in {run.recipe}; variants: "
                              f"{', '.join(names) or 'none'}")
    if v.mode != "int8":
        int8 = [x.name for x in recipe.export if x.mode == "int8"]
        raise QuantDebugError(f"quantdebug: export variant '{variant}' is {v.mode}, not int8; the quantization "
                              f"debugger measures int8 error (int8 variants: {', '.join(int8) or 'none'})")
    # A stale source would debug a model that export would refuse to convert (and that bench never sees).
    state = {(r.kind, r.name): r for r in run.status(recipe)}.get(
        ("train", "train") if v.source == "train" else ("stage", v.source))
    if state is not None and state.state != "done":
        fix = "edgecls train" if v.source == "train" else f"edgecls compress {run.root}"
        raise QuantDebugError(f"quantdebug: the source '{v.source}' of variant '{variant}' is {state.state}"
                              f"{f' ({state.why})' if state.why else ''}; run `{fix}` first")
    from edgecls.data.run_data import load_run_data
    from edgecls.export.convert import with_pixel_input
    from edgecls.run import Run

    data = load_run_data(recipe, run)
    idx = run.calibration_indices(recipe, len(data.split["train"]), v.representative_samples)
    reps = data.pixels("train", channels=3)[idx].astype(np.float32)
    d = recipe.data
    model = with_pixel_input(run.load_model(recipe, v.source), channels=d.channels, mean=d.normalize.mean,
                             std=d.normalize.std)
    rows = debug_layers(model, reps, per_channel=v.per_channel)
    record = {"variant": v.name, "source": v.source, "per_channel": v.per_channel, "images": int(len(reps)),
              "metric": "rmse_over_scale", "rounding_only": _num(ROUNDING_ONLY), "suggest_above": SUGGEST_ABOVE,
              "suggested": suggest(rows), "layers": rows}
    record["made_from"] = run.made_from(Run.variant_sections(recipe, v),
                                        [run.model_file(recipe, v.source), run.split]).to_json()
    json_path, png_path = run.quantdebug(v.name)
    try:
        plot(record, png_path)
    except ImportError as err:  # matplotlib is the plot extra; the table and JSON need none of it
        from edgecls.bench.report import plots_skipped

        png_path.unlink(missing_ok=True)
        record["plot"] = plots_skipped(err)
    fileio.write_json(json_path, record)
    record["json"], record["png"] = str(json_path), str(png_path)
    return record


def plot(record: dict, path) -> None:
    """Bar chart of RMSE/scale by op in graph order; the ops that make a layer suggested in red, the guide's cut
    dashed, rounding alone dotted."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from edgecls import fileio

    rows = sorted(record["layers"], key=lambda r: r["index"])
    suggested = set(record["suggested"])
    values = [r["rmse_over_scale"] for r in rows]
    colors = ["tab:red" if r["layer"] in suggested and r["rmse_over_scale"] > record["suggest_above"] else "tab:blue"
              for r in rows]
    fig, ax = plt.subplots(figsize=(min(30.0, max(6.0, 0.22 * len(rows) + 2)), 5))
    ax.bar(range(len(rows)), values, color=colors)
    ax.axhline(record["suggest_above"], color="tab:red", ls="--", lw=1,
               label=f"keep float above {record['suggest_above']}")
    ax.axhline(record["rounding_only"], color="gray", ls=":", lw=1, label="rounding only (1/sqrt(12))")
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([f"{r['layer'][:28]} ({r['op']})" for r in rows], rotation=90, fontsize=7)
    ax.set_ylabel("RMSE / scale")
    ax.set_title(f"int8 error by layer: variant {record['variant']} ({record['source']})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with fileio.atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def format_table(record: dict, *, limit: int = 20) -> str:
    """The text `edgecls quantdebug` prints: a quantdebug record (ranked layers) or a selective_int8 record."""
    if "tried" in record:
        lines = [f"float_layers {record['spec'] if record['spec'] == 'auto' else ', '.join(record['spec'])}: "
                 f"float {record['float_accuracy']:.4f}, target {record['target']:.4f}",
                 f"{'k':>3}  {'accuracy':>8}  {'size B':>9}  layers kept float"]
        for t in record["tried"]:
            lines.append(f"{t['k']:>3}  {t['accuracy']:8.4f}  {t['size_bytes']:>9,}  {', '.join(t['layers']) or '-'}")
        lines.append(f"kept float: {', '.join(record['layers']) or 'none'}"
                     f"{'' if record['target_met'] else '  (target not met)'}")
        return "\n".join(lines)
    rows = record["layers"]
    lines = [f"int8 error by layer, variant {record['variant']} ({record['source']}), {record['images']} calibration "
             f"images; RMSE/scale {record['rounding_only']:.2f} is rounding alone",
             f"{'#':>3}  {'layer':<32} {'op':<18} {'rmse/scale':>10} {'err mean':>10} {'err std':>10}"]
    for i, r in enumerate(rows[:limit], 1):
        mark = "  <- keep float" if r["layer"] in record["suggested"] and r["rmse_over_scale"] > \
            record["suggest_above"] else ""
        lines.append(f"{i:>3}  {r['layer'][:32]:<32} {r['op'][:18]:<18} {r['rmse_over_scale']:>10.3f} "
                     f"{r['error_mean']:>10.3g} {r['error_std']:>10.3g}{mark}")
    if len(rows) > limit:
        lines.append(f"     ... {len(rows) - limit} more in the JSON")
    if record["suggested"]:
        lines.append(f"suggested: float_layers: [{', '.join(record['suggested'])}]")
    else:
        lines.append(f"suggested: none (no layer above RMSE/scale {record['suggest_above']}); plain int8 is as good "
                     "as this debugger can tell")
    return "\n".join(lines)
