"""The on-screen table of an evaluation result (the dict that ``evaluate`` returns)."""

from __future__ import annotations

from uolrps.eval.items import summarise
from uolrps.core.annotations import Problem


def _row(name: str, r: dict) -> str:
    t = r.get("threshold")
    ts = "" if t is None else f"{t:.3f}"
    if "thresholds" in r:
        ts = "/".join(f"{v:.3f}" for v in r["thresholds"].values()) + " (per IoU)"
    if "width_fraction" in r:
        ts = f"box {r['width_fraction']:.2f}W x {r['height_fraction']:.2f}H"
    return (f"{name:<24}{r['MaxBoxAccV2']:>12.2f}{r['IoU30']:>8.2f}{r['IoU50']:>8.2f}{r['IoU70']:>8.2f}  {ts}")


def format_table(res: dict) -> str:
    lines = [f"{res['n_images']} images, {res['n_boxes']} boxes ({res['format']}: {res['found']})",
             f"model {res['model']} ({res['backbone']}, {res['input_size'][0]}x{res['input_size'][1]}), maps placed "
             f"on the image by {res.get('upsample', 'authors')} (authors, wsol)", "",
             f"{'':<24}{'MaxBoxAccV2':>12}{'IoU30':>8}{'IoU50':>8}{'IoU70':>8}  threshold"]
    names = {"authors": "authors (step .01)", "wsol": "wsol (step .001)", "wsolevaluation": "wsolevaluation",
             "uolwrps": "uolwrps (crop)"}
    for key, r in res["protocols"].items():
        lines.append(_row(names.get(key, key), r))
    for key, b in res.get("baselines", {}).items():
        if key == "centre_box":
            lines.append(_row("centre box", b))
        else:
            for proto, r in b.get("protocols", {}).items():
                lines.append(_row(f"{key} ({proto})", r))
    auth = res["protocols"].get("uolwrps") or res["protocols"].get("authors")
    if auth and "IoU_max" in auth:
        m = auth["IoU_max"]
        lines.append(f"{'  each IoU at its own t':<36}{m['IoU30']:>8.2f}{m['IoU50']:>8.2f}{m['IoU70']:>8.2f}  "
                     f"({'uolwrps' if 'uolwrps' in res['protocols'] else 'authors'}: what the authors' code prints)")
    lines.append("")
    if "gt_known_loc" in res:
        lines.append(f"GT-known Loc (IoU50, best t={res['gt_known_loc_threshold']:.2f}): {res['gt_known_loc']:.2f}")
    if "corloc" in res:
        lines.append(f"CorLoc (IoU50 at the model's threshold {res['corloc_threshold']:.3f}): {res['corloc']:.2f}")
    px = res.get("pixel")
    if px and px.get("PxAP") is not None:
        lines.append(f"PxAP {px['PxAP']:.2f}, peak IoU {px['peak_IoU']:.2f} at {px['peak_threshold']:.3f} "
                     f"({px['n_images']} images with masks)")
    skipped = [Problem(p["kind"], p["file"], p["detail"]) for p in res.get("skipped", [])]
    lines.append(f"skipped: {len(skipped)} ({summarise(skipped)})" if skipped else "skipped: none")
    if "threshold_written" in res:
        w = res["threshold_written"]
        files = ", ".join(w.get("files", [res["model"]]))
        lines.append(f"wrote threshold {w['threshold']:.3f} into {files} (source {w['source']})")
        for left in w.get("left", []):
            lines.append(f"left {left['file']} unchanged: {left['why']}")
    if "vis" in res:
        lines.append(f"wrote {len(res['vis']['worst']) + len(res['vis']['best'])} overlays")
    t = res["timings_s"]
    lines.append(f"time: inference {t['inference']:.1f} s, sweep {t['sweep']:.1f} s, total {t['total']:.1f} s")
    return "\n".join(lines)
