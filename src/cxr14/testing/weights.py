"""Placeholder pretrained-weight caches: an empty file wherever each registry entry's ImageNet
weights would be cached (torchvision's cache for the torchvision nets, the Hugging Face cache
for the named timm backbones). A dry run checks that the files are there, not what they hold."""

from __future__ import annotations

from pathlib import Path


def placeholder_caches(folder: Path) -> dict[str, str]:
    """Write the placeholders under ``folder``; returns the environment variables that point
    torchvision and Hugging Face at them (set them before the weights are looked up)."""
    from cxr14.models import ARCHITECTURES, imagenet_weights_file
    from cxr14.timm_nets import hub_id

    env = {"TORCH_HOME": str(folder / "torch"), "HF_HUB_CACHE": str(folder / "hf")}
    for arch, entry in ARCHITECTURES.items():
        if entry.torchvision is not None:
            path = folder / "torch" / imagenet_weights_file(arch).relative_to(_torch_home())
        elif entry.timm:
            repo = folder / "hf" / f"models--{hub_id(entry.timm).replace('/', '--')}"
            (repo / "refs").mkdir(parents=True, exist_ok=True)
            (repo / "refs" / "main").write_text("placeholder")
            path = repo / "snapshots" / "placeholder" / "model.safetensors"
        else:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    return env


def _torch_home() -> Path:
    import torch

    return Path(torch.hub.get_dir()).parent
