"""Shared fixtures: the real data beside the repository, generated checkpoints, an exported efflite0 model."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from uolrps.calib.backbones.random_weights import random_state_dict

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(Path(__file__).parent))  # tests/tinymodel.py and friends


def shared(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test with the reason when it is absent (a user's machine)."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real data {p} is absent (it lives beside the repository, in ../shared/data)")
    return p


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """No test may touch the user's weights cache or download anything."""
    os.environ["UOLRPS_CACHE"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def calib_subset() -> Path:
    """One class folder of the real calibration set (300 ImageNet training images)."""
    return shared("imagenet-calib", "n01440764")


@pytest.fixture(scope="session")
def vits_checkpoint(tmp_path_factory) -> Path:
    """A full-size ViT-S/16 checkpoint in the official DINO layout (random values)."""
    import torch

    from uolrps.calib.backbones.vit import VisionTransformer

    path = tmp_path_factory.mktemp("ckpt") / "dino_deitsmall16_pretrain.pth"
    torch.save(random_state_dict(VisionTransformer("vits")), path)
    return path


@pytest.fixture(scope="session")
def r50_checkpoint(tmp_path_factory) -> Path:
    """A ResNet-50 checkpoint in the torchvision / DINO layout (random values, with an fc head)."""
    import torch

    from uolrps.calib.backbones.resnet import ResNet50

    sd = random_state_dict(ResNet50(), seed=1)
    sd["fc.weight"], sd["fc.bias"] = torch.zeros(1000, 2048), torch.zeros(1000)
    path = tmp_path_factory.mktemp("ckpt") / "dino_resnet50_pretrain.pth"
    torch.save(sd, path)
    return path


@pytest.fixture(scope="session")
def efflite0_wstar(tmp_path_factory, calib_subset) -> Path:
    from uolrps.calib.wstar import compute_wstar

    path = tmp_path_factory.mktemp("w") / "efflite0.npz"
    compute_wstar(calib_subset, backbone="efflite0", sampling_ratio=0.2, progress=False).save(path)
    return path


@pytest.fixture(scope="session")
def efflite0_model(tmp_path_factory) -> Path:
    """A real efflite0 model (default w*, dynamic batch, with its FP16 twin beside it as model.fp16.onnx)."""
    from uolrps.export.onnx_export import export_model

    path = tmp_path_factory.mktemp("model") / "model.onnx"
    export_model(backbone="efflite0", output=path, dynamic_batch=True, fp16=True, progress=False,
                 log=lambda m: None)
    return path
