"""Reading weight files safely and strictly: official DINO .pth, timm / Hugging Face safetensors.

Nothing here unpickles: ``torch.load(weights_only=True)`` or safetensors. A file of another architecture
names its missing and unexpected keys and the shapes that differ.
"""

from __future__ import annotations

import re
from pathlib import Path

from uolrps.core.errors import UserError

# keys some official files carry that are not part of the encoder (classifier heads, DINO projection heads)
_IGNORED = re.compile(r"^(fc\.|head\.|head_drop|pooler\.|classifier\.|_fc\.|mask_token$)")
_WRAPPERS = ("teacher", "student", "state_dict", "model", "module")  # DINO full checkpoints and trainers
_PREFIXES = ("module.", "backbone.", "model.")


def read_state_dict(path: str | Path) -> dict:
    """Tensors of a weight file, unwrapped from the usual containers; a bad file is a UserError."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path))
        else:
            sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, corrupt, or a pickle with arbitrary objects
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(
            f"cannot read weights file {path} ({first[:200]}): it is truncated, corrupt, or not a plain "
            "state dict; download it again"
        ) from None
    for _ in range(3):
        if isinstance(sd, dict) and not any(isinstance(v, torch.Tensor) for v in sd.values()):
            inner = next((sd[k] for k in _WRAPPERS if isinstance(sd.get(k), dict)), None)
            if inner is None:
                break
            sd = inner
    if not isinstance(sd, dict) or not sd:
        raise UserError(f"weights file {path} holds no tensors")
    out = {}
    for k, v in sd.items():
        if not isinstance(v, torch.Tensor):
            continue
        for p in _PREFIXES:
            if k.startswith(p):
                k = k[len(p):]
        out[k] = v
    return out


def hf_vit_to_dino(sd: dict) -> dict:
    """Hugging Face ``ViTModel`` keys (facebook/dino-vits16 ...) to DINO's; other layouts pass through."""
    import torch

    if "embeddings.cls_token" not in sd and "vit.embeddings.cls_token" not in sd:
        return sd
    sd = {k[4:] if k.startswith("vit.") else k: v for k, v in sd.items()}
    out = {
        "cls_token": sd.pop("embeddings.cls_token"),
        "pos_embed": sd.pop("embeddings.position_embeddings"),
        "patch_embed.proj.weight": sd.pop("embeddings.patch_embeddings.projection.weight"),
        "patch_embed.proj.bias": sd.pop("embeddings.patch_embeddings.projection.bias"),
        "norm.weight": sd.pop("layernorm.weight"),
        "norm.bias": sd.pop("layernorm.bias"),
    }
    i = 0
    while f"encoder.layer.{i}.attention.attention.query.weight" in sd:
        p, q = f"encoder.layer.{i}.", f"blocks.{i}."
        for t in ("weight", "bias"):
            out[q + f"attn.qkv.{t}"] = torch.cat(
                [sd.pop(p + f"attention.attention.{n}.{t}") for n in ("query", "key", "value")], 0)
            out[q + f"attn.proj.{t}"] = sd.pop(p + f"attention.output.dense.{t}")
            out[q + f"norm1.{t}"] = sd.pop(p + f"layernorm_before.{t}")
            out[q + f"norm2.{t}"] = sd.pop(p + f"layernorm_after.{t}")
            out[q + f"mlp.fc1.{t}"] = sd.pop(p + f"intermediate.dense.{t}")
            out[q + f"mlp.fc2.{t}"] = sd.pop(p + f"output.dense.{t}")
        i += 1
    out.update(sd)  # leftovers (pooler ...) are judged by the strict load
    return out


def load_strict(module, sd: dict, source: str, backbone: str) -> None:
    """Load ``sd`` into ``module`` requiring every key and shape to match (ignorable heads aside)."""
    sd = {k: v for k, v in hf_vit_to_dino(sd).items() if not _IGNORED.match(k)}
    own = module.state_dict()
    own = {k: v for k, v in own.items() if not k.endswith("num_batches_tracked") and not _IGNORED.match(k)}
    sd = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    shallow_first = lambda k: (k.count("."), k)  # noqa: E731  (top-level names say the most)
    missing = sorted(set(own) - set(sd), key=shallow_first)
    unexpected = sorted(set(sd) - set(own), key=shallow_first)
    shapes = [f"{k}: file {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)
              and not (k == "pos_embed" and sd[k].shape[-1] == own[k].shape[-1])]
    if missing or unexpected or shapes:
        def few(items):
            return ", ".join(items[:5]) + (f" (+{len(items) - 5} more)" if len(items) > 5 else "")
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys: {few(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys: {few(unexpected)}")
        if shapes:
            parts.append(f"{len(shapes)} shapes differ: {few(shapes)}")
        raise UserError(f"{source} does not fit backbone {backbone!r}: " + "; ".join(parts)
                        + ". Is it a checkpoint of another architecture?")
    if "pos_embed" in sd and tuple(sd["pos_embed"].shape) != tuple(own["pos_embed"].shape):
        module.pos_embed = type(module.pos_embed)(sd["pos_embed"].clone())  # other pretraining grid
    module.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()}, strict=False)
