"""Grad-CAM (Selvaraju et al. 2017): where a class's score looks, as a map over the image.

Its own module because two stages use it: localisation scores the maps against expert boxes,
and ``cxr14 predict`` draws them over new images.
"""

from __future__ import annotations

import torch

from cxr14.models import unwrap
from cxr14.timm_nets import tokens_to_map


def grad_cam(model, layer, x: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al. 2017) at ``layer`` of ``classes[i]`` for image ``x[i]``,
    upsampled to the input size and scaled to [0, 1] per image. ``x``: normalised (B, 1, H, W).
    """
    cam = cam_grid(model, layer, x, classes)
    cam = torch.nn.functional.interpolate(
        cam, size=x.shape[-2:], mode="bilinear", align_corners=False
    )[:, 0]
    peak = cam.flatten(1).max(1).values.clamp(min=1e-12)[:, None, None]
    return cam / peak


def cam_grid(model, layer, x: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """The Grad-CAM at ``layer``'s own resolution, (B, 1, h, w), unscaled. A transformer
    layer's tokens (B, N, C) are read as a map of its patch grid."""
    store = {}

    def keep(module, inputs, output):
        store["a"] = output
        output.register_hook(lambda grad: store.__setitem__("g", grad))

    # In-place ReLUs would modify the hooked activation after the fact: switch them off.
    inplace = [m for m in model.modules() if getattr(m, "inplace", False)]
    for m in inplace:
        m.inplace = False
    handle = layer.register_forward_hook(keep)
    try:
        model.eval()
        x = x.detach().requires_grad_(True)  # gradients flow even through a frozen backbone
        logits = model(x)
        model.zero_grad(set_to_none=True)
        logits.gather(1, classes[:, None]).sum().backward()
    finally:
        handle.remove()
        for m in inplace:
            m.inplace = True
    a, g = store["a"].detach(), store["g"].detach()
    if a.ndim == 3:
        prefix = getattr(unwrap(model), "num_prefix_tokens", 0)
        a, g = (tokens_to_map(t, prefix, *x.shape[-2:]) for t in (a, g))
    return torch.relu((g.mean(dim=(2, 3), keepdim=True) * a).sum(1, keepdim=True))
