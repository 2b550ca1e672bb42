"""What --base is worth on a uniform set: one ImageNet class calibrated alone, against merged with a base.

    python benchmarks/calib_base.py --rows /tmp/calib_rows_efflite0.npz --like some_efflite0_calibration.npz
        [--loc ../shared/data/imagenet-loc] [--workdir /tmp/calib_base]

``--rows`` is the per-image cache of benchmarks/calib_stability.py (every image's mean feature and mean
normalised feature of imagenet-calib, efflite0 at 224); ``--like`` any calibration file of the same backbone,
weights and size (its metadata is reused, so the rows below are checked like a real --base). For each class c:
  alone:  w* from c's 300 images only (a user whose images are all one kind of object);
  base:   w* from the other 9 classes' 2700 images (a general calibration that has never seen c);
  merged: the two merged as `uolrps calib --base` does (which equals w* of all 3000 images).
All rows go into one class-wise calibration file, exported once (`uolrps export --wstar`, one heatmap channel
per row); MaxBoxAccV2 (authors' protocol, the sweep of `uolrps eval`) on the imagenet-loc images of class c.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", required=True)
    ap.add_argument("--like", required=True)
    ap.add_argument("--calib", default=str(ROOT.parent / "shared" / "data" / "imagenet-calib"))
    ap.add_argument("--loc", default=str(ROOT.parent / "shared" / "data" / "imagenet-loc"))
    ap.add_argument("--workdir", default="/tmp/calib_base")
    args = ap.parse_args()
    from uolrps.calib.merge import Base, merge
    from uolrps.calib.means import load_calibration, wstar_from_means
    from uolrps.eval import metrics as M
    from uolrps.eval.datasets import load_dataset
    from uolrps.eval.evaluate import run_heatmaps, sweep
    from uolrps.export.onnx_export import export_model
    from uolrps.runtime import Localizer

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    z = np.load(args.rows)
    F, N, paths = z["F"], z["N"], [Path(p) for p in z["paths"]]
    cls = np.array([p.relative_to(args.calib).parts[0] for p in paths])
    like = load_calibration(args.like)["meta"]
    names, V, U = [], [], []
    for c in sorted(set(cls)):
        own, rest = cls == c, cls != c
        base = Base(Path("rest"), F[rest].mean(0), N[rest].mean(0), int(rest.sum()), like, "")
        v_m, u_m, _ = merge(F[own].mean(0), N[own].mean(0), int(own.sum()), [base])
        for kind, v, u in (("alone", F[own].mean(0), N[own].mean(0)), ("base", base.v, base.u),
                           ("merged", v_m, u_m)):
            names.append(f"{c}:{kind}")
            V.append(v)
            U.append(u)
    V, U = np.array(V), np.array(U)
    W = wstar_from_means(V, U).astype(np.float32)
    meta = dict(like, classes=names, classwise=True, images=f"{args.calib} rows by class", version="bench")
    wfile = work / "rows.npz"
    np.savez(wfile, w=W, v=V.astype(np.float32), u=U.astype(np.float32), n_images=np.zeros(len(names), np.int64),
             meta=np.array(json.dumps(meta)))
    model = work / "rows.onnx"
    if not model.is_file():
        export_model(backbone=like["backbone"], output=model, wstar=wfile, size=like["input_size"][0],
                     dynamic_batch=True, log=lambda m: print(m, file=sys.stderr))
    ds = load_dataset(args.loc)
    class AllChannels:  # run_heatmaps keeps one channel; keep every row's map from the same single pass
        def __init__(self, loc):
            self.loc, self.backend, self.meta, self.kept = loc, loc.backend, loc.meta, []

        def heatmaps(self, frames):
            hm = self.loc.heatmaps(frames)
            self.kept.append(hm)
            return hm

    with Localizer(model) as loc:
        every = AllChannels(loc)
        items, _, sizes = run_heatmaps(ds, every, 0)
        maps = np.concatenate(every.kept)  # N x rows x h x w
    import csv

    with open(Path(args.loc) / "boxes.csv", newline="") as f:
        wnid = {row["image"]: row["wnid"] for row in csv.DictReader(f)}
    print(f"MaxBoxAccV2 (authors) on {args.loc}, efflite0 at {like['input_size'][0]}")
    print(f"{'class':>10} {'images':>6} | {'alone (300)':>11} {'base (2700)':>11} {'merged (3000)':>13}")
    rows = {n: i for i, n in enumerate(names)}
    totals = {"alone": [], "base": [], "merged": []}
    for c in sorted(set(cls)):
        sel = [i for i, it in enumerate(items) if wnid.get(Path(it.path).name) == c]
        accs = {}
        for kind in totals:
            hm = maps[sel, rows[f"{c}:{kind}"]]
            res = sweep([items[i] for i in sel], hm, [sizes[i] for i in sel], authors=True, wsol=False)
            accs[kind] = M.authors_summary(None, acc=res["authors"])["MaxBoxAccV2"]
            totals[kind].append((accs[kind], len(sel)))
        print(f"{c:>10} {len(sel):>6} | {accs['alone']:>11.1f} {accs['base']:>11.1f} {accs['merged']:>13.1f}")
    mean = {k: sum(a * n for a, n in v) / sum(n for _, n in v) for k, v in totals.items()}
    print(f"{'all':>10} {sum(n for _, n in totals['alone']):>6} | {mean['alone']:>11.1f} {mean['base']:>11.1f} "
          f"{mean['merged']:>13.1f}")


if __name__ == "__main__":
    main()
