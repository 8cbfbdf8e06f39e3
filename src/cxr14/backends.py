"""The network behind ``cxr14 predict``: PyTorch (any device; Grad-CAM needs it) or
onnxruntime on the CPU, whose kernels score a batch 2-3 times faster than eager PyTorch on a
few cores (BENCHMARKS.md).

onnxruntime runs the bundle's ONNX graph (``cxr14.onnx_export``, checked against PyTorch
within 1e-4 when written): exported on first use into a cache beside the bundle named by the
bundle's sha256 (``bundle.<hash>.onnx``; in the user's cache folder where the bundle's folder is
read-only), or an exported file whose recorded hash is the bundle's. ``auto`` takes onnxruntime
on the CPU where it is installed and the graph can be built, else PyTorch, saying why; a failed
export is remembered beside the cache until torch or onnxruntime change version.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cxr14.bundle import bundle_scorer
from cxr14.inference import Scorer
from cxr14.provenance import sha256_file

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnx")


class BackendError(RuntimeError):
    """The backend asked for cannot score this bundle; the message says why."""


@dataclass
class Network:
    """``predict``: probabilities (n, classes) of uint8 images (n, S, S); ``where``: the backend
    in words; ``scorer``: the PyTorch model where that is the backend."""

    backend: str
    predict: Callable[[np.ndarray], np.ndarray]
    where: str
    scorer: Scorer | None = None


def cpu_threads() -> int:
    """The CPUs this process may run on: its affinity (taskset, SLURM's cpusets) and cgroup
    quota (containers), not the machine's core count."""
    from joblib import cpu_count

    return cpu_count()


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """PyTorch's intra-op threads set to ``n`` for the block, restored after."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def torch_network(bundle: dict, device: str, batch_size: int) -> Network:
    scorer = bundle_scorer(bundle, device)
    run = lambda x: scorer.predict(torch.from_numpy(x), batch_size)  # noqa: E731
    return Network("torch", run, f"PyTorch on {scorer.device}", scorer)


def graph_cache(model_path, sha256: str) -> Path:
    """Where the ONNX graph of the bundle ``model_path`` (hash ``sha256``) is cached."""
    model_path = Path(model_path)
    folder = model_path.resolve().parent
    if os.access(folder, os.W_OK):
        return folder / f"{model_path.stem}.{sha256[:16]}.onnx"
    home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(home) / "cxr14" / "onnx" / f"{sha256}.onnx"


def _versions() -> dict[str, str]:
    import onnxruntime

    return {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__}


def _failed_marker(path: Path) -> Path:
    return path.with_name(f"{path.name}-failed.json")


def _export_cached(bundle: dict, path: Path, sha256: str) -> None:
    """Export the bundle's graph to ``path``, or say why it cannot be (remembered)."""
    marker = _failed_marker(path)
    if marker.is_file():
        record = json.loads(marker.read_text())
        if record.get("versions") == _versions():
            raise BackendError(f"its ONNX export failed before ({record['reason']}; {marker})")
    try:
        from cxr14.onnx_export import export_graph

        path.parent.mkdir(parents=True, exist_ok=True)
        # First calls at once (a SLURM array on one bundle) each write their own, then rename.
        part = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}")
        try:
            export_graph(bundle, part, sha256)
            os.replace(part, path)
        finally:
            part.unlink(missing_ok=True)
    except ImportError as exc:
        raise BackendError(
            f"the ONNX exporter is not installed ({exc.name}; pip install 'cxr14[onnx]')"
        ) from None
    except Exception as exc:  # any exporter failure: the bundle is still scored, by PyTorch
        reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"
        marker.write_text(json.dumps({"reason": reason, "versions": _versions()}))
        raise BackendError(f"its ONNX graph could not be exported ({reason})") from exc
    _remove_stale(path, sha256)


def _remove_stale(path: Path, sha256: str) -> None:
    """Remove the graphs (and failure records) of earlier versions of the bundle file whose
    graph ``path`` is beside it."""
    suffix = f".{sha256[:16]}.onnx"
    if not path.name.endswith(suffix):  # the user's cache: one file per bundle hash
        return
    stem = re.escape(path.name[: -len(suffix)])
    stale = re.compile(stem + r"\.[0-9a-f]{16}\.onnx(-failed\.json)?")
    for old in path.parent.iterdir():
        if old != path and stale.fullmatch(old.name):
            old.unlink(missing_ok=True)


def _session(path, threads: int, sha256: str):
    """An onnxruntime CPU session of the graph ``path``, which must be the bundle's."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Idle workers sleep rather than spin: the decoding threads need those cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's own errors: not a readable graph
        raise BackendError(f"{path} is not a readable ONNX graph ({exc})") from None
    recorded = session.get_modelmeta().custom_metadata_map.get("bundle_sha256")
    if recorded != sha256:
        raise BackendError(
            f"{path} is not the graph of this bundle (it records bundle sha256 "
            f"{recorded or 'none'}, the bundle's is {sha256}): export it with cxr14 export-onnx"
        )
    return session


def onnx_network(bundle: dict, model_path, threads: int, onnx_file=None, sha256=None) -> Network:
    """onnxruntime on the bundle's graph: ``onnx_file``, or the cache (exported if missing,
    again if unreadable); BackendError says why not. ``sha256``: the bundle file's, when the
    caller has it."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise BackendError("onnxruntime is not installed (pip install 'cxr14[onnx]')") from None
    sha256 = sha256 or sha256_file(model_path)
    path = Path(onnx_file) if onnx_file else graph_cache(model_path, sha256)
    try:
        session = _session(path, threads, sha256)
    except BackendError as exc:
        if onnx_file:
            raise
        if path.exists():
            log.warning("%s; exporting it again", exc)
        _export_cached(bundle, path, sha256)
        session = _session(path, threads, sha256)
    name = session.get_inputs()[0].name
    run = lambda x: session.run(None, {name: x})[0]  # noqa: E731
    return Network("onnx", run, f"onnxruntime (graph {path})")


def open_network(
    bundle: dict,
    model_path,
    backend: str = "auto",
    device: str = "auto",
    threads: int = 1,
    batch_size: int = 32,
    onnx_file=None,
    sha256=None,
) -> Network:
    """The bundle's network on ``backend``: ``onnx`` (the CPU; ``onnx_file`` or the cache),
    ``torch`` (on ``device``), or ``auto``: onnxruntime where the device is the CPU and the
    graph can be built, else PyTorch (the reason logged). ``sha256``: the bundle file's, when
    the caller has it (the graph cache is keyed by it)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
    cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
    if onnx_file and backend == "torch":
        raise BackendError("an ONNX graph (--onnx) is run by onnxruntime, not --backend torch")
    if backend == "onnx" or onnx_file:
        if device == "cuda":
            raise BackendError("onnxruntime scores on the CPU here: use --device cpu")
        return onnx_network(bundle, model_path, threads, onnx_file, sha256)
    if backend == "auto" and cpu:
        try:
            return onnx_network(bundle, model_path, threads, sha256=sha256)
        except BackendError as exc:
            log.warning("%s: %s; scoring with PyTorch", model_path, exc)
    return torch_network(bundle, device, batch_size)
