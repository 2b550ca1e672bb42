"""``evaluate``: run the shipped model over a data set once, then sweep thresholds on the stored heatmaps.

Inference goes through :class:`uolrps.runtime.Localizer` (the runtime's preprocessing and backend, any
model file it opens; ``uolrps.eval.inference``), boxes through ``uolrps.core.boxes``, compared with the
ground truth in source pixels (``uolrps.eval.sweep``). See ``uolrps.eval.metrics`` for the protocols and
docs/eval.md for the output. This module only puts the steps together and writes the results.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from uolrps.core.boxes import check_placement
from uolrps.core.errors import OptionError, UserError
from uolrps.eval import metrics as M
from uolrps.eval.datasets import load_dataset
from uolrps.eval.items import Dataset, summarise
from uolrps.eval.inference import run_heatmaps
from uolrps.eval.protocols import PIPELINES, PUBLISHED, run_pipeline
from uolrps.eval.sweep import summarise_sweep, sweep
from uolrps.core.options import check_at_least
from uolrps.runtime.backends import ModelOptions

PROTOCOLS = ("both", "authors", "wsol", *PUBLISHED, "all")


def _check_caam(backbone: str, weights) -> None:
    import importlib.util

    from uolrps.calib.backbones import get_spec

    get_spec(backbone)
    if weights is not None and not Path(weights).is_file():
        raise OptionError(f"caam_weights {str(weights)!r} does not exist", "caam_weights")
    if importlib.util.find_spec("torch") is None:
        raise UserError("the CAAM baseline needs PyTorch, which this install lacks: pip install 'uolrps[export]'")


def evaluate(dataset_path: str | Path, model_path: str | Path, fmt: str = "auto", protocol: str = "both",
             split: str | None = None, images_root: str | Path | None = None, write_threshold: bool = False,
             json_path: str | Path | None = None, save_vis: str | Path | None = None, n_vis: int = 8,
             channel: int = 0, caam_backbone: str | None = None, caam_weights: str | Path | None = None,
             backend: str = "auto", progress: bool = False, workers: int | None = None,
             meta: str | Path | None = None, options: ModelOptions | None = None,
             upsample: str | None = None) -> dict:
    """Evaluate a model file on a data set; returns the result dict (see docs/eval.md).

    ``protocol``: ``both`` (default: ``authors`` and ``wsol``), ``authors`` or ``wsol`` (the one whose
    threshold is reported first and written by ``write_threshold``; the others write the authors' one),
    ``wsolevaluation`` or ``uolwrps`` (a published pipeline end to end, ``uolrps.eval.protocols``, beside the
    authors' protocol), or ``all``. ``upsample``: how maps are placed on the image for ``authors`` and
    ``wsol`` (``uolrps.core.boxes.PLACEMENTS``; default: the model's own, as ``run`` does). ``caam_backbone``
    adds the CAAM baseline (channel sum of that backbone's features, needs torch). The best fixed centre box is always reported.
    ``meta``: for a TensorRT engine without a sidecar (trtexec, Polygraphy), the ONNX file it was built from.
    ``options`` (:class:`uolrps.runtime.backends.ModelOptions`): how to open the model, in place of ``backend``
    and ``meta`` (providers, threads and backend-specific options, such as OpenVINO's device and precision, included).
    """
    from uolrps.runtime import Localizer

    if protocol not in PROTOCOLS:
        raise UserError(f"unknown protocol {protocol!r}: use one of {', '.join(PROTOCOLS)}")
    if upsample is not None:
        check_placement(upsample)
    check_at_least(n_vis, 1, "n_vis (the number of worst and best cases to draw)")
    if workers is not None:
        check_at_least(workers, 1, "workers")
    options = options or ModelOptions(backend, meta=meta)
    if options.meta is not None and write_threshold:
        raise OptionError("write_threshold cannot write into an engine without a sidecar: run eval on the ONNX file "
                          "given to meta instead (the engine reads the threshold from that file), or rebuild the "
                          "engine with uolrps build, which writes a sidecar", "write_threshold", "meta")
    _check_outputs(model_path, json_path, save_vis, write_threshold)  # before any work, so a bad path costs nothing
    if caam_backbone:  # before the inference, not after it
        _check_caam(caam_backbone, caam_weights)
    t_start = time.perf_counter()
    ds = load_dataset(dataset_path, fmt, split, images_root)
    with Localizer(model_path, options=options) as loc:
        meta = loc.meta
        if not 0 <= channel < len(meta.classes):
            raise UserError(f"channel {channel} does not exist: the model has {len(meta.classes)} heatmap channels "
                            f"({', '.join(meta.classes)})")
        placement = upsample or meta.upsample
        if write_threshold and placement != meta.upsample:
            raise OptionError(f"write_threshold with upsample={placement}: the threshold would be chosen with maps placed "
                              f"by {placement}, but the model places them by {meta.upsample} (its metadata): leave the "
                              "placement out to write the threshold for the model's own placement",
                              "upsample", "write_threshold")
        t0 = time.perf_counter()
        items, heatmaps, sizes = run_heatmaps(ds, loc, channel, progress=progress, workers=workers)
        published_maps = {}  # a published pipeline whose model sees another frame than the image: a second pass
        for name in PUBLISHED:
            frame = PIPELINES[name].frame
            if items and protocol in (name, "all") and frame is not None:
                kept = Dataset(ds.format, ds.root, items, [], ds.description)
                published_maps[name] = run_heatmaps(kept, loc, channel, progress=progress, workers=workers,
                                                    transform=lambda fr, frame=frame: frame(fr, meta.input_size))[1]
        t_infer = time.perf_counter() - t0
    if not items:
        raise UserError(f"no usable images in {dataset_path}: {summarise(ds.problems)}")
    t0 = time.perf_counter()
    # the authors' sweep always runs: GT-known Loc and CorLoc (at the model's threshold) come from it
    swept = sweep(items, heatmaps, sizes, authors=True, wsol=protocol in ("both", "wsol", "all"),
                 extra_thresholds=(meta.threshold,), pixels=ds.has_masks, progress=progress, workers=workers,
                 placement=placement)
    published = {name: run_pipeline(name, published_maps.get(name, heatmaps), items, sizes, meta.input_size,
                                    progress=progress, workers=workers)
                 for name in PUBLISHED if protocol in (name, "all")}
    t_sweep = time.perf_counter() - t0
    result = {
        "dataset": str(dataset_path), "format": ds.format, "found": ds.description, "model": str(model_path),
        "backbone": meta.backbone, "input_size": list(meta.input_size), "channel": channel,
        "n_images": len(items), "n_boxes": int(sum(len(it.boxes) for it in items)), "primary": protocol,
        "upsample": placement,
    }
    result.update(summarise_sweep(swept, meta.threshold))
    if protocol == "wsol":
        del result["protocols"]["authors"]
    result["protocols"].update(published)
    if swept["pixel"] is not None:
        result["pixel"] = swept["pixel"]
    result["baselines"] = {"centre_box": M.centre_box_baseline(sizes, [it.boxes for it in items])}
    t_caam = 0.0
    if caam_backbone:
        t0 = time.perf_counter()
        from uolrps.eval.baselines import feature_baselines

        result["baselines"].update(feature_baselines(items, sizes, caam_backbone, caam_weights, meta.input_size,
                                                     protocol, progress, workers))
        t_caam = time.perf_counter() - t0
    ds.problems += swept["mask_problems"]
    result["skipped"] = [p.to_dict() for p in ds.problems]
    chosen = result["protocols"]["wsol" if protocol == "wsol" else "authors"]
    result["threshold"] = chosen["threshold"]
    if save_vis is not None:
        from uolrps.eval.vis import save_cases

        result["vis"] = save_cases(save_vis, items, heatmaps, sizes, chosen["threshold"], n_vis, placement)
    if write_threshold:  # last but the JSON (whose path was checked first): a failure above changes no model
        from uolrps.model.threshold import write_threshold as _write

        source = f"eval:{'wsol' if protocol == 'wsol' else 'authors'}:{Path(dataset_path).resolve().name}:{len(items)}"
        done = _write(model_path, chosen["threshold"], source)
        result["threshold_written"] = {"threshold": chosen["threshold"], "source": source,
                                       "files": [str(p) for p in done.written],
                                       "left": [{"file": str(p), "why": why} for p, why in done.left]}
    result["timings_s"] = {"inference": round(t_infer, 3), "sweep": round(t_sweep, 3), "caam": round(t_caam, 3),
                           "total": round(time.perf_counter() - t_start, 3)}
    if json_path is not None:
        _write_json(Path(json_path), result)
    return result


def _check_outputs(model_path, json_path, save_vis, write_threshold=False) -> None:
    from uolrps.model.threshold import threshold_targets
    from uolrps.core.paths import check_distinct_outputs, check_output_path


    if json_path is not None:
        check_output_path(json_path, "json_path", (".json",), inputs=(model_path,))
    if save_vis is not None:
        if Path(save_vis).exists() and not Path(save_vis).is_dir():
            raise OptionError(f"save_vis {str(save_vis)!r} is a file: give a folder", "save_vis")
        check_output_path(Path(save_vis) / "case.png", "save_vis")
    check_distinct_outputs({"json_path": json_path, "save_vis": save_vis} |
                           (threshold_targets(model_path) if write_threshold else {}))


def _write_json(path: Path, result: dict) -> None:
    from uolrps.core.paths import write_atomic

    text = json.dumps(result, indent=2) + "\n"
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), "json_path", size=len(text.encode()))