"""The ``cxr14`` command: use a trained model outside the workflow.

cxr14 predict --model results/models/<run>/bundle.pt IMAGE_OR_FOLDER... [--out CSV]
cxr14 evaluate --model results/models/<run>/bundle.pt --manifest labels.csv [--out DIR]
cxr14 evaluate --model results/models/<run>/bundle.pt --layout chexpert --data DIR [--split test]
cxr14 provenance --model results/models/<run>/bundle.pt [--config config.yaml]
"""

from __future__ import annotations

import argparse
import logging
import sys


def _add_evaluate(sub) -> None:
    """The `evaluate` command's arguments."""
    v = sub.add_parser(
        "evaluate",
        help="validate a model bundle on labelled images: your own (a CSV manifest) or a "
        "release folder of a known data set",
        description="Score labelled images with a model bundle: those of a manifest CSV (path, "
        "patient, and label columns named as the model's classes or as the findings they are; "
        "docs/data.md), or a release folder of a known layout (--layout, --data; its PA and "
        "AP images, all or its official test split). Writes the evaluation's metrics over the "
        "findings the model and the images share (AUROC and AP with patient-bootstrap 95% "
        "CIs, calibration, operating points at the bundle's validation thresholds), the "
        "predictions, the images that failed, a short report and the provenance record into "
        "--out. The images are scored as `cxr14 predict` scores them (--backend, --threads). "
        "Exit status 2 when the images or the model cannot be read or the backend asked for "
        "cannot run it.",
    )
    v.add_argument("--model", required=True, help="a model bundle (bundle.pt)")
    source = v.add_mutually_exclusive_group(required=True)
    source.add_argument("--manifest", help="the CSV manifest of labelled images")
    source.add_argument(
        "--layout", help="the layout of the release folder --data (its data.source)"
    )
    v.add_argument("--data", help="with --layout: the release folder")
    v.add_argument(
        "--split",
        default="all",
        choices=["all", "test"],
        help="with --layout: every image, or the data set's official test images",
    )
    v.add_argument("--out", default="external_validation", help="output folder (%(default)s)")
    v.add_argument("--bootstrap", type=int, default=1000, help="bootstrap replicates")
    _add_scoring(v)
    v.add_argument(
        "--blank",
        default="negative",
        choices=["negative", "unknown"],
        help="what a blank label is (an uncertain one, -1, is never scored)",
    )


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def _add_predict(sub) -> None:
    """The `predict` command's arguments."""
    p = sub.add_parser(
        "predict",
        help="score PNG, JPEG and DICOM files with a model bundle",
        description="Score image files (folders are searched recursively for .png, .jpg, "
        ".jpeg, .dcm, .dicom, and for DICOM files by content whatever their name, e.g. a "
        "PACS export's IM0001) with a model bundle made by the workflow "
        "(results/models/<run>/bundle.pt). Writes one row per image (probabilities, and "
        "positive/negative at the bundle's validation-chosen thresholds) and, beside it, "
        "<out>_failures.csv and <out>_provenance.json. Exit status 1 when any input could "
        "not be scored, 2 when no image was found, the model is not a bundle or the backend "
        "asked for cannot run it.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders")
    p.add_argument("--model", required=True, help="a model bundle (bundle.pt)")
    p.add_argument("--out", default="predictions.csv", help="output CSV (default: %(default)s)")
    _add_scoring(p)
    p.add_argument(
        "--cam",
        metavar="DIR",
        help="also write a Grad-CAM overlay PNG per image of its 3 most probable findings "
        "(drawn by PyTorch, whatever the backend)",
    )
    p.add_argument(
        "--onnx",
        metavar="FILE",
        help="the bundle's graph exported with `cxr14 export-onnx`, instead of the cache",
    )


def _add_scoring(p) -> None:
    """How `predict` and `evaluate` run the network: device, batch, backend, threads."""
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--batch-size", type=_positive, default=32)
    p.add_argument(
        "--backend",
        default="auto",
        choices=["auto", "torch", "onnx"],
        help="the network's runtime: onnxruntime on the CPU (the bundle's ONNX graph, exported "
        "once into a cache beside the bundle), PyTorch, or auto: onnxruntime where the device "
        "is the CPU and the graph can be built, else PyTorch (default: %(default)s)",
    )
    p.add_argument(
        "--threads",
        type=_positive,
        help="CPU threads of the network and of image decoding "
        "(default: the CPUs this process may use)",
    )


def _scoring(args) -> dict:
    """The `_add_scoring` arguments as ``cxr14.predict.score_paths``'s keywords."""
    return {k: getattr(args, k) for k in ("device", "batch_size", "backend", "threads")}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cxr14", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _add_predict(sub)
    _add_evaluate(sub)
    e = sub.add_parser(
        "export-onnx",
        help="write a model bundle as an ONNX graph (checked with onnxruntime)",
        description="Write the bundle as ONNX: input `image`, uint8 (batch, S, S) at the "
        "bundle's store size; output `probabilities` (batch, classes). The normalisation is "
        "inside the graph; labels and thresholds are in its metadata. Kept only if "
        "onnxruntime reproduces PyTorch's probabilities within 1e-4.",
    )
    e.add_argument("--model", required=True, help="a model bundle (bundle.pt)")
    e.add_argument("--out", required=True, help="the ONNX file to write")
    r = sub.add_parser(
        "provenance",
        help="what a model bundle was trained from, and the commands that rebuild it",
        description="Print the bundle's provenance record as JSON (code commit and uncommitted "
        "changes, resolved configuration, data files' and store's hashes, versions, device) "
        "and the commands that rebuild its model.",
    )
    r.add_argument("--model", required=True, help="a model bundle (bundle.pt)")
    r.add_argument(
        "--config", metavar="FILE", help="also write the recorded configuration (YAML) here"
    )
    return parser


def _provenance(model, config_file) -> int:
    """`cxr14 provenance`: the record on stdout, the rebuild commands on stderr."""
    import json

    import yaml

    from cxr14.bundle import load_bundle
    from cxr14.provenance import rebuild_commands

    bundle = load_bundle(model)
    record = bundle["provenance"].get("record") or {}
    print(json.dumps(record, indent=1, default=str))
    if not record.get("config"):
        print(f"{model}: trained before cxr14 recorded its provenance", file=sys.stderr)
        return 1
    if config_file:
        with open(config_file, "w") as f:
            yaml.safe_dump(record["config"], f, sort_keys=False)
    commands = rebuild_commands(bundle, config_file or "config.yaml")
    print("# to rebuild this model:\n" + "\n".join(commands), file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # This package's own lines; other libraries' (the ONNX exporter's optimiser) only warnings.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    logging.getLogger("cxr14").setLevel(logging.INFO)
    # torch is imported only for a command that needs it (`--help` stays instant).
    from cxr14.backends import BackendError
    from cxr14.bundle import BundleError
    from cxr14.errors import DataError

    try:
        if args.command == "provenance":
            return _provenance(args.model, args.config)
        if args.command == "export-onnx":
            from cxr14.onnx_export import export_onnx

            export_onnx(args.model, args.out)
            return 0
        if args.command == "evaluate":
            from cxr14.external import evaluate_external

            if args.layout and not args.data:
                raise DataError("--layout needs --data, the release folder")
            evaluate_external(
                args.model,
                args.manifest,
                args.out,
                args.bootstrap,
                blank=args.blank,
                layout=args.layout,
                data_dir=args.data,
                split=args.split,
                **_scoring(args),
            )
            return 0
        from cxr14.predict import predict

        _, failures = predict(
            args.model,
            args.inputs,
            args.out,
            cam_dir=args.cam,
            onnx_file=args.onnx,
            **_scoring(args),
        )
    except (BackendError, BundleError, DataError) as exc:
        print(f"cxr14 {args.command}: {exc}", file=sys.stderr)
        return 2
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
