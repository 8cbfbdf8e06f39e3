"""`cxr14 predict` on the CPU: the ONNX graph cache (exported once, rebuilt when stale or
corrupt, refused when of another bundle), the fallback to PyTorch with a note, one thread
count, decoding overlapped with the network but never more than two batches ahead, and an
interruption that leaves no output and no thread behind. (Agreement of the two backends on
every architecture: test_onnx.py.)"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import small_bundle
from PIL import Image

import cxr14.backends as backends
import cxr14.dicom
import cxr14.onnx_export
from cxr14 import cli
from cxr14.backends import BackendError, Network, cpu_threads
from cxr14.onnx_export import export_onnx
from cxr14.predict import predict
from cxr14.provenance import sha256_file as bundle_sha256
from cxr14.testing import hangguard


def _pngs(folder, n: int, bad=()) -> list:
    """``n`` small gray PNGs named 000.png...; the indices in ``bad`` are not images."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        if i in bad:
            (folder / f"{i:03d}.png").write_text("not an image")
        else:
            pixels = rng.integers(0, 256, (64, 64), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    return sorted(folder.iterdir())


@pytest.fixture
def exports(monkeypatch) -> list:
    """Every ONNX export ``predict`` makes (the real exporter still runs)."""
    made, real = [], cxr14.onnx_export.export_graph

    def counted(bundle, out, sha256):
        made.append(out)
        return real(bundle, out, sha256)

    monkeypatch.setattr(cxr14.onnx_export, "export_graph", counted)
    return made


def test_the_graph_is_exported_once_per_bundle_and_rebuilt_when_corrupt(tmp_path, exports, caplog):
    caplog.set_level(logging.INFO, logger="cxr14")
    bundle = small_bundle(tmp_path / "m" / "bundle.pt")
    _pngs(tmp_path / "in", 3)
    first, _ = predict(bundle, [tmp_path / "in"], tmp_path / "a.csv", "cpu")
    graph = tmp_path / "m" / f"bundle.{bundle_sha256(bundle)[:16]}.onnx"
    assert len(exports) == 1 and graph.is_file()
    assert "with onnxruntime (graph " in caplog.text
    predict(bundle, [tmp_path / "in"], tmp_path / "b.csv", "cpu")
    assert len(exports) == 1  # the cache is used
    graph.write_bytes(graph.read_bytes()[:100])  # a partial copy, a full disk
    again, _ = predict(bundle, [tmp_path / "in"], tmp_path / "c.csv", "cpu")
    assert len(exports) == 2 and "is not a readable ONNX graph" in caplog.text
    pd.testing.assert_frame_equal(first, again)
    small_bundle(bundle, seed=1)  # the bundle is remade (new weights): a new graph, the old gone
    predict(bundle, [tmp_path / "in"], tmp_path / "d.csv", "cpu")
    assert len(exports) == 3 and not graph.exists()
    new = f"bundle.{bundle_sha256(bundle)[:16]}.onnx"
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == sorted(["bundle.pt", new])


def test_first_calls_at_once_on_one_bundle_both_score(tmp_path):
    """Two `cxr14 predict` processes starting together (a SLURM array on one bundle) each
    export the graph to their own file and rename it: both succeed, one valid graph stays."""
    bundle = small_bundle(tmp_path / "m" / "bundle.pt")
    _pngs(tmp_path / "in", 2)
    exe = [sys.executable, "-m", "cxr14.cli", "predict", "--model", str(bundle), "--device", "cpu"]
    procs = [
        hangguard.start([*exe, "--out", str(tmp_path / f"{k}.csv"), str(tmp_path / "in")])
        for k in range(2)
    ]
    for proc in procs:
        done = hangguard.finish(proc, guard=hangguard.COMMAND)
        assert done.returncode == 0, done.stderr
    (graph,) = (tmp_path / "m").glob("*.onnx")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == sorted(["bundle.pt", graph.name])
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "0.csv"), pd.read_csv(tmp_path / "1.csv"))


def test_an_exported_graph_is_used_only_for_its_own_bundle(tmp_path, exports):
    bundle, other = small_bundle(tmp_path / "a.pt"), small_bundle(tmp_path / "b.pt", seed=1)
    export_onnx(bundle, tmp_path / "a.onnx")
    _pngs(tmp_path / "in", 2)
    table, _ = predict(
        bundle, [tmp_path / "in"], tmp_path / "p.csv", "cpu", onnx_file=tmp_path / "a.onnx"
    )
    assert len(table) == 2 and exports == [tmp_path / "a.onnx"]  # export_onnx's own, no cache
    with pytest.raises(BackendError, match=r"a\.onnx is not the graph of this bundle"):
        predict(other, [tmp_path / "in"], tmp_path / "q.csv", "cpu", onnx_file=tmp_path / "a.onnx")
    assert not (tmp_path / "q.csv").exists()
    with pytest.raises(BackendError, match="not --backend torch"):
        predict(
            bundle,
            [tmp_path / "in"],
            tmp_path / "q.csv",
            "cpu",
            backend="torch",
            onnx_file=tmp_path / "a.onnx",
        )


def test_a_graph_that_cannot_be_exported_falls_back_to_torch_with_a_note(
    tmp_path, monkeypatch, caplog
):
    calls = []

    def broken(bundle, out, sha256):
        calls.append(out)
        raise RuntimeError("unsupported operator aten::made_up\nmore detail")

    monkeypatch.setattr(cxr14.onnx_export, "export_graph", broken)
    bundle = small_bundle(tmp_path / "bundle.pt")
    _pngs(tmp_path / "in", 3, bad={1})
    table, failures = predict(bundle, [tmp_path / "in"], tmp_path / "a.csv", "cpu")
    note = "its ONNX graph could not be exported (RuntimeError: unsupported operator aten::made_up)"
    assert f"{note}; scoring with PyTorch" in caplog.text
    want, want_failures = predict(
        bundle, [tmp_path / "in"], tmp_path / "t.csv", "cpu", backend="torch"
    )
    pd.testing.assert_frame_equal(table, want)
    assert failures == want_failures and len(table) == 2
    # Remembered: the next call does not try again (until torch or onnxruntime change).
    caplog.clear()
    predict(bundle, [tmp_path / "in"], tmp_path / "b.csv", "cpu")
    assert len(calls) == 1 and "its ONNX export failed before (RuntimeError" in caplog.text
    # Asked for by name, it is an error (exit status 2), and nothing is written.
    args = ["predict", "--model", str(bundle), "--out", str(tmp_path / "x.csv"), "--device", "cpu"]
    assert cli.main([*args, "--backend", "onnx", str(tmp_path / "in")]) == 2
    assert not (tmp_path / "x.csv").exists()


def test_without_onnxruntime_auto_scores_with_torch(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime fails
    bundle = small_bundle(tmp_path / "bundle.pt")
    _pngs(tmp_path / "in", 2)
    table, _ = predict(bundle, [tmp_path / "in"], tmp_path / "a.csv", "cpu")
    assert len(table) == 2
    assert (
        "onnxruntime is not installed (pip install 'cxr14[onnx]'); scoring with PyTorch"
        in caplog.text
    )
    with pytest.raises(BackendError, match="onnxruntime is not installed"):
        predict(bundle, [tmp_path / "in"], tmp_path / "b.csv", "cpu", backend="onnx")


def test_a_read_only_bundle_folder_caches_the_graph_in_the_users_cache(tmp_path, monkeypatch):
    bundle = small_bundle(tmp_path / "shared" / "bundle.pt")
    writable = os.access
    monkeypatch.setattr(
        backends.os, "access", lambda p, mode: p != bundle.parent and writable(p, mode)
    )
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    _pngs(tmp_path / "in", 2)
    predict(bundle, [tmp_path / "in"], tmp_path / "a.csv", "cpu", backend="onnx")
    assert (tmp_path / "cache" / "cxr14" / "onnx" / f"{bundle_sha256(bundle)}.onnx").is_file()
    assert not list(bundle.parent.glob("*.onnx"))


def test_one_thread_count_for_the_network_and_the_decoding(tmp_path, monkeypatch):
    """onnxruntime's intra-op threads, PyTorch's (restored after) and the decoding threads all
    follow ``threads``; its default is the CPUs the process may run on (its affinity)."""
    bundle = small_bundle(tmp_path / "bundle.pt")
    _pngs(tmp_path / "in", 12)
    sessions, decoders, real = [], set(), backends._session

    def spy_session(path, threads, sha256):
        session = real(path, threads, sha256)
        sessions.append(session.get_session_options())
        return session

    load = cxr14.dicom.load_image

    def spy_load(*args):
        decoders.add(threading.current_thread().name)
        return load(*args)

    monkeypatch.setattr(backends, "_session", spy_session)
    monkeypatch.setattr(cxr14.dicom, "load_image", spy_load)
    before = torch.get_num_threads()
    predict(bundle, [tmp_path / "in"], tmp_path / "a.csv", "cpu", 2, threads=3)
    assert (sessions[-1].intra_op_num_threads, sessions[-1].inter_op_num_threads) == (3, 1)
    assert 1 <= len(decoders) <= 3 and all(n.startswith("cxr14-decode") for n in decoders)
    assert torch.get_num_threads() == before
    code = "import os; os.sched_setaffinity(0, {0}); import cxr14.backends as b; "
    code += "print(b.cpu_threads())"
    proc = hangguard.run([sys.executable, "-c", code], guard=hangguard.COMMAND, check=True)
    assert proc.stdout.strip() == "1" and cpu_threads() == len(os.sched_getaffinity(0))
    with pytest.raises(SystemExit) as refused:
        cli.main(["predict", "--model", str(bundle), "--threads", "0", str(tmp_path / "in")])
    assert refused.value.code == 2


def _slow_network(calls: list, decoded: list, fail_at=None):
    """A stand-in network: records how many images were decoded when each batch arrived, and
    gives the decoders time to run ahead if they were unbounded."""

    def run(images):
        if len(calls) == fail_at:
            raise KeyboardInterrupt
        time.sleep(0.3)
        calls.append(len(decoded))
        return np.full((len(images), 14), 0.5, np.float32)

    return Network("test", run, "a stand-in network")


def test_decoding_runs_ahead_of_the_network_by_two_batches_at_most(tmp_path, monkeypatch):
    bundle = small_bundle(tmp_path / "bundle.pt")
    paths = _pngs(tmp_path / "in", 20, bad={3, 11, 12})
    calls, decoded, load = [], [], cxr14.dicom.load_image

    def counted(*args):
        decoded.append(args[0])
        return load(*args)

    monkeypatch.setattr(cxr14.dicom, "load_image", counted)
    network = _slow_network(calls, decoded)
    monkeypatch.setattr("cxr14.predict.open_network", lambda *a: network)
    table, failures = predict(bundle, [tmp_path / "in"], tmp_path / "p.csv", "cpu", 4, threads=2)
    # Batch k arrives with its own images decoded and at most two more batches (8 images).
    assert calls[0] > 4  # overlapped: decoding went on during the first batch
    assert all(n <= 4 * (k + 1) + 8 for k, n in enumerate(calls)), calls
    assert [p for p, _ in failures] == [str(paths[i]) for i in (3, 11, 12)]  # input order
    assert table["image"].tolist() == [str(p) for i, p in enumerate(paths) if i not in (3, 11, 12)]


def test_an_interrupted_prediction_writes_nothing_and_leaves_no_thread(tmp_path, monkeypatch):
    bundle = small_bundle(tmp_path / "bundle.pt")
    _pngs(tmp_path / "in", 20)
    network = _slow_network([], [], fail_at=2)
    monkeypatch.setattr("cxr14.predict.open_network", lambda *a: network)
    with pytest.raises(KeyboardInterrupt):
        predict(bundle, [tmp_path / "in"], tmp_path / "p.csv", "cpu", 4, threads=2)
    assert not list(tmp_path.glob("p*.csv"))
    assert not [t for t in threading.enumerate() if t.name.startswith("cxr14-decode")]


def test_grad_cam_overlays_come_from_torch_beside_onnx_probabilities(tmp_path):
    bundle = small_bundle(tmp_path / "bundle.pt")
    _pngs(tmp_path / "in", 2)
    table, _ = predict(
        bundle,
        [tmp_path / "in"],
        tmp_path / "p.csv",
        "cpu",
        cam_dir=tmp_path / "cam",
        backend="onnx",
    )
    want, _ = predict(bundle, [tmp_path / "in"], tmp_path / "t.csv", "cpu", backend="torch")
    assert table["cam"].map(os.path.isfile).all() and len(table) == 2
    probs = [c for c in want if c.startswith("prob_")]
    np.testing.assert_allclose(table[probs], want[probs], atol=1e-4)
