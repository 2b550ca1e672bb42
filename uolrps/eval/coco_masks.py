"""COCO segmentations (polygons, uncompressed and compressed RLE) decoded to masks with pycocotools."""

from __future__ import annotations

import warnings

import numpy as np

INSTALL = "pip install 'uolrps[coco]' (pycocotools)"


def decode_segmentations(segs, size: tuple[int, int]) -> np.ndarray:
    """The union (H x W bool) of COCO segmentations on an image of ``size`` = (H, W); ValueError when one
    does not fit the image or cannot be decoded."""
    try:
        from pycocotools import mask as coco_mask
    except ImportError:
        raise ValueError(f"COCO masks need pycocotools: {INSTALL}") from None
    H, W = size
    out = np.zeros((H, W), dtype=bool)
    for seg in segs:
        try:
            if isinstance(seg, list):  # polygons
                rle = coco_mask.merge(coco_mask.frPyObjects(seg, H, W))
            else:
                if [int(v) for v in seg["size"]] != [H, W]:
                    raise ValueError(f"an RLE of size {seg['size'][1]}x{seg['size'][0]} on a {W}x{H} image")
                rle = coco_mask.frPyObjects(seg, H, W) if isinstance(seg["counts"], list) else \
                    {"size": seg["size"], "counts": seg["counts"].encode("ascii")}
            with warnings.catch_warnings():  # pycocotools' own NumPy 2 copy-keyword DeprecationWarning
                warnings.simplefilter("ignore", DeprecationWarning)
                out |= coco_mask.decode(rle).astype(bool)
        except ValueError:
            raise
        except Exception as e:  # pycocotools raises plain Exceptions and TypeErrors on malformed input
            raise ValueError(f"cannot decode a segmentation ({type(e).__name__}: {e})") from None
    return out
