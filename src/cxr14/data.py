"""Feeding the GPU from the HDF5 store without ever waiting on PNG decoding or file reads.

The images of the rows a run needs are read once, in large contiguous blocks, into one uint8
tensor (7.3 GB for all 112,120 images at 256x256; 4x less than float32). On CUDA that tensor
lives on the GPU when it fits (then a batch is one gather on the device), otherwise in pinned
host memory, from which a background thread gathers the next batch and copies it
asynchronously while the GPU works on the current one. Normalisation with the average image
and pixel std, resizing to the training resolution and augmentation all run on the device.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import h5py
import numpy as np
import torch
import torch.nn.functional as F

BLOCK = 1024  # rows per HDF5 read


def read_rows(store_h5: str, rows: np.ndarray, out: torch.Tensor | None = None) -> torch.Tensor:
    """Images of ``rows`` (sorted or not) as a (len(rows), H, W) uint8 tensor, written into
    ``out`` when given (a slice of a larger tensor: several stores read into one).

    Reads contiguous blocks spanning the requested rows: h5py's fancy indexing would issue one
    small read per row.
    """
    rows = np.asarray(rows, dtype=np.int64)
    order = np.argsort(rows, kind="stable")
    sorted_rows = rows[order]
    with h5py.File(store_h5, "r") as h5:
        ds = h5["images"]
        if out is None:
            out = torch.empty((len(rows), *ds.shape[1:]), dtype=torch.uint8)
        i = 0
        while i < len(sorted_rows):
            start = sorted_rows[i]
            j = np.searchsorted(sorted_rows, start + BLOCK, side="left")
            block = ds[start : min(start + BLOCK, ds.shape[0])]
            out[torch.from_numpy(order[i:j])] = torch.from_numpy(block[sorted_rows[i:j] - start])
            i = j
    return out


def read_pooled_rows(stores, offsets, rows: np.ndarray) -> torch.Tensor:
    """Images of the pooled ``rows`` of several stores (store k's row r is ``offsets[k] + r``;
    ``rows`` sorted), each store's read straight into its slice of one tensor: no second copy
    of the images, as concatenating per-store tensors would make."""
    if len(stores) == 1:
        return read_rows(stores[0], rows)
    ends = np.searchsorted(rows, [*offsets[1:], np.inf])
    starts = [0, *ends[:-1]]
    with h5py.File(stores[0], "r") as h5:
        shape = h5["images"].shape[1:]
    out = torch.empty((len(rows), *shape), dtype=torch.uint8)
    for store, offset, a, b in zip(stores, offsets, starts, ends, strict=True):
        if b > a:
            read_rows(store, rows[a:b] - offset, out=out[a:b])
    return out


class Normalizer(torch.nn.Module):
    """uint8 (B, H, W) -> float (B, 1, S, S): (x - average image) / pixel std, resized to S."""

    def __init__(self, average: np.ndarray, std: float, input_size: int):
        super().__init__()
        self.register_buffer("average", torch.as_tensor(average, dtype=torch.float32)[None, None])
        self.std = float(std)
        self.input_size = int(input_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x[:, None].float() - self.average) / self.std
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            size = (self.input_size, self.input_size)
            x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        return x


def augment(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Light random affine (shift <= 4%, scale +-5%, rotation +-5 deg); no flips (anatomy)."""
    b = x.shape[0]
    r = torch.rand((b, 4), generator=generator, device=x.device) * 2 - 1
    angle = r[:, 0] * (5 * torch.pi / 180)
    scale = 1 + 0.05 * r[:, 1]
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, 0.04 * r[:, 2]], 1), torch.stack([sin, cos, 0.04 * r[:, 3]], 1)],
        1,
    )
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="border", align_corners=False)


class DeviceData:
    """Images and labels of some rows, ready to be served in batches on ``device``."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        device: torch.device,
        max_device_fraction: float = 0.5,
    ):
        """``max_device_fraction``: the images live on the GPU when they take at most this
        fraction of its free memory (0: always in pinned host memory)."""
        self.device = device
        self.labels = labels.float()
        on_gpu = (
            device.type == "cuda"
            and images.numel() <= max_device_fraction * torch.cuda.mem_get_info(device)[0]
        )
        if on_gpu:
            self.images = images.to(device)
            self.labels = self.labels.to(device)
        elif device.type == "cuda":
            self.images = images.pin_memory()
        else:
            self.images = images
        self.on_device = self.images.device.type == device.type

    def __len__(self) -> int:
        return len(self.labels)

    def batches(
        self, positions: np.ndarray, batch_size: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (uint8 images, float labels) on the device for consecutive slices of
        ``positions`` (indices into this object's rows)."""
        stop = len(positions)
        bounds = [(i, min(i + batch_size, stop)) for i in range(0, stop, batch_size)]
        if self.on_device:
            # One host-to-device copy of the epoch's indices: a per-batch copy from pageable
            # memory would block the CPU until the GPU caught up, and stop it queueing ahead.
            idx = torch.as_tensor(np.asarray(positions[:stop]), device=self.device)
            for a, b in bounds:
                yield self.images.index_select(0, idx[a:b]), self.labels.index_select(0, idx[a:b])
            return
        slices = [np.asarray(positions[a:b]) for a, b in bounds]
        yield from self._prefetched(slices, batch_size)

    def _prefetched(self, slices, batch_size):
        if self.device.type != "cuda":
            for sl in slices:  # on the CPU a thread would only compete with compute
                idx = torch.as_tensor(sl)
                yield self.images.index_select(0, idx), self.labels.index_select(0, idx)
            return
        # A background thread gathers each batch into one of a few reusable pinned buffers
        # and copies it to the GPU on a side stream while the GPU computes on the previous one.
        n_buf = 3
        shape = (batch_size, *self.images.shape[1:])
        bufs = [
            (
                torch.empty(shape, dtype=torch.uint8).pin_memory(),
                torch.empty((batch_size, self.labels.shape[1])).pin_memory(),
            )
            for _ in range(n_buf)
        ]
        copied: list[torch.cuda.Event | None] = [None] * n_buf
        q: queue.Queue = queue.Queue(maxsize=n_buf - 1)
        stream = torch.cuda.Stream(self.device)

        def worker():
            for k, sl in enumerate(slices):
                b = k % n_buf
                if copied[b] is not None:
                    copied[b].synchronize()  # the buffer's previous copy has left it
                hx, hy = bufs[b]
                idx = torch.as_tensor(sl)
                torch.index_select(self.images, 0, idx, out=hx[: len(sl)])
                torch.index_select(self.labels, 0, idx, out=hy[: len(sl)])
                with torch.cuda.stream(stream):
                    x = hx[: len(sl)].to(self.device, non_blocking=True)
                    y = hy[: len(sl)].to(self.device, non_blocking=True)
                    event = torch.cuda.Event()
                    event.record(stream)
                copied[b] = event
                q.put((x, y, event))
            q.put(None)

        t = threading.Thread(target=worker, daemon=True)
        t.start()
        while (item := q.get()) is not None:
            x, y, event = item
            current = torch.cuda.current_stream(self.device)
            current.wait_event(event)
            # Tell the caching allocator these side-stream tensors are used on this stream.
            x.record_stream(current)
            y.record_stream(current)
            yield x, y
        t.join()
