"""The ``cxr14`` command: use a trained model outside the workflow.

cxr14 predict --model results/models/<run>/bundle.pt IMAGE_OR_FOLDER... [--out CSV]
"""

from __future__ import annotations

import argparse
import logging
import sys


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cxr14", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "predict",
        help="score PNG, JPEG and DICOM files with a model bundle",
        description="Score image files (folders are searched recursively for .png, .jpg, "
        ".jpeg, .dcm, .dicom, and for DICOM files by content whatever their name, e.g. a "
        "PACS export's IM0001) with a model bundle made by the workflow "
        "(results/models/<run>/bundle.pt). Writes one row per image (probabilities, and "
        "positive/negative at the bundle's validation-chosen thresholds) and, beside it, "
        "<out>_failures.csv. Exit status 1 when any input could not be scored, 2 when no "
        "image was found or the model is not a bundle.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders")
    p.add_argument("--model", required=True, help="a model bundle (bundle.pt)")
    p.add_argument("--out", default="predictions.csv", help="output CSV (default: %(default)s)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument(
        "--cam",
        metavar="DIR",
        help="also write a Grad-CAM overlay PNG per image of its 3 most probable findings",
    )
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # This package's own lines; other libraries' (the ONNX exporter's optimiser) only warnings.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    logging.getLogger("cxr14").setLevel(logging.INFO)
    # torch is imported only for a command that needs it (`--help` stays instant).
    from cxr14.bundle import BundleError
    from cxr14.errors import DataError

    try:
        if args.command == "export-onnx":
            from cxr14.onnx_export import export_onnx

            export_onnx(args.model, args.out)
            return 0
        from cxr14.predict import predict

        _, failures = predict(
            args.model, args.inputs, args.out, args.device, args.batch_size, args.cam
        )
    except (BundleError, DataError) as exc:
        print(f"cxr14 {args.command}: {exc}", file=sys.stderr)
        return 2
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
