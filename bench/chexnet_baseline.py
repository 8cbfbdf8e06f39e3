"""The training loop of the CheXNet reimplementations, as the baseline of bench_gpu.py --e2e.

As CheXNet (Rajpurkar et al. 2017, arXiv:1711.05225v3, sections 2.2 and 3.1) describes it and
its public reimplementations run it: torchvision's DenseNet-121 with a 14-way head, every image
opened from its PNG by PIL in a ``Dataset``, converted to RGB, downscaled to 224x224,
normalised with ImageNet's mean and std, randomly flipped; a ``DataLoader`` with every CPU core;
fp32; Adam (0.9, 0.999) at 1e-3, mini-batches of 16, unweighted binary cross-entropy.
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch
import torchvision
from PIL import Image
from torch import nn
from torchvision import transforms

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class PngDataset(torch.utils.data.Dataset):
    """One image per item, decoded from its file on every access."""

    def __init__(self, paths, labels: np.ndarray, size: int = 224):
        self.paths, self.labels = list(paths), torch.as_tensor(labels, dtype=torch.float32)
        self.transform = transforms.Compose(
            [
                transforms.Resize((size, size)),
                transforms.RandomHorizontalFlip(),
                transforms.ToTensor(),
                transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
            ]
        )

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i):
        with Image.open(self.paths[i]) as im:
            return self.transform(im.convert("RGB")), self.labels[i]


def chexnet_model(num_classes: int = 14) -> nn.Module:
    net = torchvision.models.densenet121(weights=None)
    net.classifier = nn.Linear(net.classifier.in_features, num_classes)
    return net


def chexnet_style_epoch(
    paths, labels: np.ndarray, device, batch_size=16, workers=None, size=224, seed=0
) -> dict:
    """One training epoch over ``paths`` the CheXNet way; wall time from the loader's start to
    the last step, and images per second."""
    torch.manual_seed(seed)
    device = torch.device(device)
    model = chexnet_model(labels.shape[1]).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999))
    loss_fn = nn.BCEWithLogitsLoss()
    workers = os.cpu_count() if workers is None else workers
    loader = torch.utils.data.DataLoader(
        PngDataset(paths, labels, size),
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    t = time.perf_counter()
    seen, loss = 0, torch.tensor(float("nan"))
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        seen += len(x)
    last_loss = loss.item()  # waits for the device
    seconds = time.perf_counter() - t
    return {"images": seen, "seconds": seconds, "images_per_s": seen / seconds, "loss": last_loss}
