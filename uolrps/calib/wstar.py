"""Representer point selection: w* from unlabeled images, streamed in O(C) memory.

Over images resized to S x S (OpenCV INTER_LINEAR from the decoded 8-bit RGB image) with features f_ip:
  v = mean of f_ip,  u = mean of f_ip / |f_ip|,  w* = normalize(v - u |v| / |u|).
Class-wise: the same per class folder, giving K x C. With ``keep_representers`` the per-image sums
A_i = sum_p f_ip and B_i = sum_p n_ip are kept, so that afterwards r_i = c / (N P) (A_i - s B_i) with
s = |v| / |u| and c = 1 / |v - s u|: the representer contribution of image i (the r_i sum to w*).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from uolrps import __version__
from uolrps.core.errors import OptionError, UserError
from uolrps.calib.means import EPS, wstar_from_means
from uolrps.calib.stability import split_half_cosine
from uolrps.core.images import list_images, read_rgb, resize
from uolrps.core.progress import progress as progress_bar



@dataclass
class Calibration:
    """The result of ``compute_wstar``; ``save`` writes the pickle-free .npz of docs/CONTRACTS.md."""

    w: np.ndarray  # (C,) or (K, C), unit rows
    v: np.ndarray
    u: np.ndarray
    n_images: np.ndarray  # () or (K,)
    meta: dict
    skipped: list[str] = field(default_factory=list)
    representers: dict | None = None
    report: str = ""  # the stability line (uolrps.calib.stability.report)
    warnings: list[str] = field(default_factory=list)

    def save(self, path: str | Path) -> Path:
        from uolrps.core.paths import check_output_path, write_atomic

        path = check_output_path(path, "output", (".npz",))
        arrays = dict(w=self.w.astype(np.float32), v=self.v.astype(np.float32), u=self.u.astype(np.float32),
                      n_images=np.asarray(self.n_images, dtype=np.int64), meta=np.array(json.dumps(self.meta)))
        if self.representers:
            arrays.update(self.representers)
        size = sum(a.nbytes for a in arrays.values()) + 512 * len(arrays)  # the .npz: arrays plus a header each
        return write_atomic(path, lambda tmp: np.savez(tmp, **arrays), "output", size=size)


def _sample(paths: list[Path], ratio: float, seed: int) -> list[Path]:
    if ratio >= 1.0:
        return paths
    k = max(1, int(round(ratio * len(paths))))
    idx = np.sort(np.random.default_rng(seed).choice(len(paths), size=k, replace=False))
    return [paths[i] for i in idx]


def _groups(root: Path, classwise: bool) -> list[tuple[str, list[Path]]]:
    if not root.exists():
        raise UserError(f"image folder {root} does not exist")
    if not classwise:
        return [("object", list_images(root))]
    if not root.is_dir():
        raise OptionError(f"classwise needs a folder with one sub-folder per class, but {root} is a file", "classwise")
    classes = sorted(p for p in root.iterdir() if p.is_dir())
    groups = [(c.name, list_images(c)) for c in classes]
    groups = [(n, ps) for n, ps in groups if ps]
    if not groups:
        raise OptionError(f"classwise found no class sub-folders with images under {root}", "classwise")
    return groups


def compute_wstar(images: str | Path, backbone: str = "vits", weights: str | Path | None = None, size: int = 224,
                  classwise: bool = False, sampling_ratio: float = 1.0, batch: int = 32, seed: int = 0,
                  keep_representers: bool = False, top_k: int = 4, dilated: bool = False,
                  progress: bool = True, encoder=None, base=()) -> Calibration:
    """Compute w* (or K class-wise rows) from the images under ``images``; see the module docstring.

    ``base``: calibration files merged in exactly (uolrps.calib.merge). The result carries a stability
    ``report`` (split-half cosine on these images) and ``warnings`` when they are too few (uolrps.calib.stability).
    """
    import torch

    from uolrps.calib import merge as M
    from uolrps.calib.stability import report as stability_report

    from uolrps.core.options import check_input_size

    check_input_size(size)
    if not 0.0 < sampling_ratio <= 1.0:
        raise OptionError(f"sampling_ratio must be in (0, 1], but got {sampling_ratio}", "sampling_ratio")
    if batch < 1:
        raise OptionError(f"batch must be at least 1, but got {batch}", "batch")
    if encoder is None:
        from uolrps.calib.backbones import get_spec

        get_spec(backbone)  # an unknown name is refused before any image is read
    root = Path(images)
    groups = [(n, _sample(ps, sampling_ratio, seed)) for n, ps in _groups(root, classwise)]
    total = sum(len(ps) for _, ps in groups)
    if total == 0:
        raise UserError(f"no images (jpg, jpeg, png, bmp, webp) under {root}")
    if keep_representers and classwise:
        raise OptionError("keep_representers works with a single w*, not with classwise", "keep_representers", "classwise")
    bases = M.load_bases(base, encoder.info.backbone if encoder is not None else backbone)  # before minutes of encoding
    if bases and classwise:
        raise OptionError("base merges single-w* calibrations, not classwise ones", "base", "classwise")
    if bases and keep_representers:
        raise OptionError("keep_representers cannot be combined with base: the base file holds only the means "
                          "of its images, not each image's contribution that `uolrps explain` shows",
                          "keep_representers", "base")
    if encoder is None:
        from uolrps.calib.encoder import build_encoder

        encoder = build_encoder(backbone, weights, size, dilated=dilated, progress=progress)
    H, W = encoder.info.input_size
    C = encoder.info.channels

    def load(p: Path):
        img = read_rgb(p)
        return None if img is None else resize(img, (H, W))

    K = len(groups)
    sum_f, sum_n = np.zeros((K, C)), np.zeros((K, C))
    count_pos, count_img = np.zeros(K), np.zeros(K, dtype=np.int64)
    half_f, half_n, half_pos = np.zeros((K, 2, C)), np.zeros((K, 2, C)), np.zeros((K, 2))
    halves = [np.random.default_rng(seed + 1).permutation(len(ps)) % 2 for _, ps in groups]  # split-half
    skipped: list[str] = []
    rep_paths, rep_a, rep_b, rep_norms = [], [], [], []
    with ThreadPoolExecutor(max_workers=2) as pool, torch.inference_mode(), \
            progress_bar(total, "calib", unit="images", enabled=progress) as bar:
        for k, (_, paths) in enumerate(groups):
            for i in range(0, len(paths), batch):
                chunk = paths[i:i + batch]
                decoded = list(pool.map(load, chunk))
                ok = [(p, im) for p, im in zip(chunk, decoded) if im is not None]
                half = np.array([h for h, im in zip(halves[k][i:i + batch], decoded) if im is not None])
                skipped += [str(p) for p, im in zip(chunk, decoded) if im is None]
                if ok:
                    x = torch.from_numpy(np.stack([im for _, im in ok]))
                    f = encoder(x).double().flatten(2)  # N x C x P
                    norm = f.norm(dim=1, keepdim=True)
                    n = f / norm.clamp_min(EPS)
                    a, b = f.sum(2), n.sum(2)  # N x C
                    sum_f[k] += a.sum(0).numpy()
                    sum_n[k] += b.sum(0).numpy()
                    count_pos[k] += f.shape[0] * f.shape[2]
                    count_img[k] += f.shape[0]
                    for h in (0, 1):
                        half_f[k, h] += a.numpy()[half == h].sum(0)
                        half_n[k, h] += b.numpy()[half == h].sum(0)
                        half_pos[k, h] += (half == h).sum() * f.shape[2]
                    if keep_representers:
                        rep_paths += [str(p) for p, _ in ok]
                        rep_a.append(a.numpy())
                        rep_b.append(b.numpy())
                        rep_norms.append(norm[:, 0].numpy())
                bar.advance(len(chunk))
    empty = [groups[k][0] for k in range(K) if count_img[k] == 0]
    if empty:
        raise UserError(f"no readable images under {root}" + (f" for classes {empty}" if classwise else "")
                        + f" ({len(skipped)} unreadable, e.g. {skipped[:3]})")
    v = sum_f / count_pos[:, None]
    u = sum_n / count_pos[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        split = [split_half_cosine(half_f[k] / half_pos[k][:, None], half_n[k] / half_pos[k][:, None])
                 for k in range(K)]
    n_own = int(count_img.min())
    worst = min((s for s in split if s is not None), default=None)
    w = wstar_from_means(v, u)
    n_total = None
    if not classwise:
        v, u, w, count_img = v[0], u[0], w[0], count_img[0]
    meta = dict(
        backbone=encoder.info.backbone, weights=encoder.info.weights, weights_sha256=encoder.info.weights_sha256,
        input_size=list(encoder.info.input_size), grid=list(encoder.info.grid), mean=list(encoder.info.mean),
        std=list(encoder.info.std), classes=[n for n, _ in groups], classwise=classwise,
        sampling_ratio=sampling_ratio, seed=seed, images=str(root), n_skipped=len(skipped),
        dilated=encoder.info.dilated, version=__version__,
        date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        split_half_cosine=worst,
    )
    if bases:
        M.check_compatible(bases, meta)
        v, u, n_total = M.merge(v, u, int(count_img), bases)
        w = wstar_from_means(v, u)
        meta.update(n_own_images=int(count_img), bases=[b.record() for b in bases])
        meta["images"] = " + ".join([str(root)] + [f"{b.meta.get('images', b.path)} (--base {b.path})" for b in bases])
        count_img = np.int64(n_total)
    line, warning = stability_report(n_own, worst, n_total)
    reps = None
    if keep_representers:
        reps = _representers(v, u, count_pos[0], rep_paths, np.concatenate(rep_a), np.concatenate(rep_b),
                             np.concatenate(rep_norms), encoder.info.grid, top_k)
    return Calibration(w=w.astype(np.float32), v=v.astype(np.float32), u=u.astype(np.float32),
                       n_images=np.asarray(count_img), meta=meta, skipped=skipped, representers=reps,
                       report=line, warnings=[warning] if warning else [])


def _representers(v, u, n_pos, paths, A, B, norms, grid, top_k) -> dict:
    """Per-image contributions r_i = c / (N P) (A_i - s B_i) and each image's strongest positions."""
    s = np.linalg.norm(v) / max(np.linalg.norm(u), EPS)
    c = 1.0 / max(np.linalg.norm(v - s * u), EPS)
    r = c / n_pos * (A - s * B)
    flat = c * (norms - s) / n_pos  # N x P: the global importance alpha_ip of every position
    w = grid[1]
    k = min(top_k, flat.shape[1])
    top = np.argsort(-flat, axis=1, kind="stable")[:, :k]
    pos = np.stack([top // w, top % w], axis=-1).astype(np.int32)
    return dict(rep_paths=np.array(paths, dtype=str), rep_r=r.astype(np.float32), rep_top_pos=pos,
                rep_top_alpha=np.take_along_axis(flat, top, 1).astype(np.float32),
                rep_scale=np.float64(s), rep_c=np.float64(c))
