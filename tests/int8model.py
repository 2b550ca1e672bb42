"""A small but real uolrps graph for the INT8 tests: a tiny conv + attention encoder under the real
HeatmapGraph tail, exported by the real exporter, so node names and the tail are what ``uolrps export`` gives.

The encoder has what the INT8 recipe must tell apart: a convolution and Linear layers (quantized), an
attention product of two activations, Softmax, LayerNorm, GELU and a residual Add (kept float).
"""

from __future__ import annotations

import numpy as np


def tiny_encoder(size: int = 64, channels: int = 16, seed: int = 0):
    import torch
    from torch import nn

    from uolrps.calib.encoder import Encoder, EncoderInfo

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, channels, 8, stride=8)
            self.norm = nn.LayerNorm(channels)
            self.qk = nn.Linear(channels, 2 * channels)
            self.fc = nn.Linear(channels, channels)
            self.grid = size // 8

        def forward(self, x):
            f = self.conv(x)  # N C h w
            t = f.flatten(2).transpose(1, 2)  # N L C
            q, k = self.qk(self.norm(t)).chunk(2, dim=-1)
            attn = torch.softmax(q @ k.transpose(1, 2) / channels ** 0.5, dim=-1)
            t = t + self.fc(nn.functional.gelu(attn @ t))  # residual Add
            return t.transpose(1, 2).reshape(x.shape[0], channels, self.grid, self.grid)

    torch.manual_seed(seed)
    net = Net()
    info = EncoderInfo("tiny", (size, size), (size // 8, size // 8), channels, (127.0,) * 3, (128.0,) * 3,
                       "generated", "0" * 64)
    return Encoder(net, info)


def tiny_int8_model(size: int = 64, dynamic_batch: bool = True, batch: int = 1):
    """(FP32 ONNX ModelProto with metadata, its ModelMeta) of the tiny encoder with a random w*."""
    from uolrps.export.graph import HeatmapGraph
    from uolrps.export.onnx_export import torch_to_onnx
    from uolrps.model.onnx_meta import set_meta
    from uolrps.model.meta import ModelMeta

    enc = tiny_encoder(size)
    w = np.random.default_rng(1).standard_normal((1, enc.info.channels)).astype(np.float32)
    model = torch_to_onnx(HeatmapGraph(enc, w), enc.info.input_size, batch, dynamic_batch, log=lambda m: None)
    meta = ModelMeta(backbone="tiny", input_size=enc.info.input_size, grid=enc.info.grid, mean=enc.info.mean,
                     std=enc.info.std, dynamic_batch=dynamic_batch, batch=batch, version="test")
    return set_meta(model, meta), meta


def scenes(n: int, size: int = 64, seed: int = 0) -> list[np.ndarray]:
    """Bright rectangles on textured dark backgrounds, RGB uint8."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        im = rng.integers(0, 90, (size, size, 3), dtype=np.uint8)
        x, y = rng.integers(0, size // 2, 2)
        w, h = rng.integers(size // 4, size // 2, 2)
        im[y:y + h, x:x + w] = rng.integers(150, 256, 3, dtype=np.uint8)
        out.append(im)
    return out


def write_scenes(folder, n: int, size: int = 64, seed: int = 0):
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    for i, im in enumerate(scenes(n, size, seed)):
        cv2.imwrite(str(folder / f"s{i:03d}.png"), im[:, :, ::-1])
    return folder


def write_int8_twins(folder):
    """The tiny model and its INT8 twins, exported into ``folder`` as `uolrps export --int8` writes them
    (calibrated on 40 generated scenes, 8 for the quantizer): the paths of model.onnx, model.int8.onnx (Q/DQ)
    and model.int8.cpu.onnx (dynamic)."""
    import onnx

    from uolrps.export import int8 as q8

    model, meta = tiny_int8_model()
    made = q8.int8_twins(model, meta, folder / "model.onnx", write_scenes(folder / "calib", 40), n_images=8,
                         log=lambda m: None)
    for t in made:
        onnx.save(t.model, str(t.path))
    onnx.save(model, str(folder / "model.onnx"))
    return folder / "model.onnx", made[0].path, made[1].path
