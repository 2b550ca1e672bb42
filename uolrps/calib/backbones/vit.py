"""DINO's Vision Transformer (ViT-S/16, ViT-S/8, ViT-B/16), with the official checkpoint key names.

Features for the method: the last block's tokens after the final LayerNorm, CLS token dropped, ReLU,
reshaped to N x C x h x w. Position embeddings are interpolated exactly as DINO does (bicubic, with its
+0.1 offset) for the input size given at construction, once, and kept as a buffer: the exported graph
holds a constant and no resize.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from uolrps.core.errors import OptionError

CONFIGS = {  # name: (patch, dim, depth, heads)
    "vits": (16, 384, 12, 6),
    "vits8": (8, 384, 12, 6),
    "vitb": (16, 768, 12, 12),
}


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(B, N, C))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class LayerNorm(nn.LayerNorm):
    """LayerNorm whose statistics are computed in float32 even when the network runs in float16."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float32:
            return super().forward(x)
        w = self.weight.float() if self.weight is not None else None
        b = self.bias.float() if self.bias is not None else None
        return F.layer_norm(x.float(), self.normalized_shape, w, b, self.eps).to(x.dtype)


class Block(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1 = LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, dim * 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, patch: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


def interpolate_pos_embed(pos_embed: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """DINO's position embedding interpolation (bicubic, +0.1 offset) to a feature grid (h, w)."""
    n = pos_embed.shape[1] - 1
    side = int(math.sqrt(n))
    h, w = grid
    if h * w == n and h == w:
        return pos_embed
    dim = pos_embed.shape[-1]
    patch = pos_embed[:, 1:].reshape(1, side, side, dim).permute(0, 3, 1, 2)
    patch = F.interpolate(patch.float(), scale_factor=((h + 0.1) / side, (w + 0.1) / side), mode="bicubic")
    if patch.shape[-2:] != (h, w):  # DINO asserts the same
        raise RuntimeError(f"position embedding interpolated to {tuple(patch.shape[-2:])}, expected {(h, w)}")
    patch = patch.permute(0, 2, 3, 1).reshape(1, h * w, dim).to(pos_embed.dtype)
    return torch.cat((pos_embed[:, :1], patch), dim=1)


class VisionTransformer(nn.Module):
    """Keys as in the official DINO files: cls_token, pos_embed, patch_embed.proj.*, blocks.N.*, norm.*."""

    def __init__(self, name: str = "vits", img_size: tuple[int, int] = (224, 224)):
        super().__init__()
        patch, dim, depth, heads = CONFIGS[name]
        self.patch, self.dim = patch, dim
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, (224 // patch) ** 2 + 1, dim))
        self.patch_embed = PatchEmbed(patch, dim)
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(depth))
        self.norm = LayerNorm(dim, eps=1e-6)
        self.set_input_size(img_size)

    @property
    def out_channels(self) -> int:
        return self.dim

    def set_input_size(self, img_size: tuple[int, int]) -> None:
        H, W = img_size
        if H % self.patch or W % self.patch:
            raise OptionError(
                f"input size {H}x{W} is not a multiple of the patch size {self.patch}: "
                f"use e.g. size={max(self.patch, round(H / self.patch) * self.patch)}", "size"
            )
        self.img_size = (H, W)
        self.grid = (H // self.patch, W // self.patch)
        self._pos_cache = None  # recomputed lazily from pos_embed (which a checkpoint may replace)

    def position_embedding(self) -> torch.Tensor:
        if self._pos_cache is None or self._pos_cache.dtype != self.pos_embed.dtype:
            with torch.no_grad():
                self._pos_cache = interpolate_pos_embed(self.pos_embed.detach(), self.grid)
        return self._pos_cache

    def _load_from_state_dict(self, *args, **kwargs):
        self._pos_cache = None
        return super()._load_from_state_dict(*args, **kwargs)

    def _apply(self, fn, *args, **kwargs):
        self._pos_cache = None
        return super()._apply(fn, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised images N x 3 x H x W -> ReLU'd patch features N x C x h x w."""
        B, _, H, W = x.shape
        if (H, W) != self.img_size:
            raise ValueError(f"this encoder was built for input {self.img_size}, but got {(H, W)}")
        tokens = self.patch_embed(x)
        tokens = torch.cat((self.cls_token.expand(B, -1, -1).to(tokens.dtype), tokens), dim=1)
        tokens = tokens + self.position_embedding().to(tokens.dtype)
        for blk in self.blocks:
            tokens = blk(tokens)
        tokens = self.norm(tokens)[:, 1:]
        h, w = self.grid
        return F.relu(tokens).transpose(1, 2).reshape(B, self.dim, h, w)
