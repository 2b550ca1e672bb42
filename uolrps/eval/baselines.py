"""Feature baselines for ``uolrps eval --caam BACKBONE`` (needs torch): the channel sum (CAAM) and the
per-position L2 norm of that backbone's features, through the same sweep as the model."""

from __future__ import annotations

import numpy as np

from uolrps.core.errors import UserError
from uolrps.eval import metrics as M
from uolrps.eval.sweep import summarise_sweep, sweep
from uolrps.core.images import read_rgb
from uolrps.core.progress import progress as progress_bar


def feature_baselines(items, sizes, backbone, weights, size, protocol, progress, workers) -> dict:
    """Baselines from ``backbone``'s features, through the same sweep: ``caam`` (channel sum) and
    ``feature_norm`` (L2 norm per position)."""
    try:
        from uolrps.calib.encoder import build_encoder, features
    except ImportError as e:
        raise UserError(f"the CAAM baseline needs PyTorch ({e}): pip install 'uolrps[export]'") from None
    enc = build_encoder(backbone, weights, tuple(size), progress=progress)
    caam, norm = [], []
    with progress_bar(len(items), "caam", unit="images", enabled=progress) as bar:
        for i in range(0, len(items), 32):
            rgb = [read_rgb(it.path) for it in items[i:i + 32]]
            f = features(enc, images_rgb=rgb)
            caam.append(M.caam_heatmaps(f)[:, 0])
            norm.append(M.feature_norm_heatmaps(f)[:, 0])
            bar.advance(len(rgb))
    out = {}
    for key, maps in (("caam", caam), ("feature_norm", norm)):
        swept = sweep(items, np.concatenate(maps), sizes, authors=protocol != "wsol", wsol=protocol != "authors",
                      workers=workers)
        out[key] = summarise_sweep(swept)
        out[key]["backbone"] = backbone
    return out
