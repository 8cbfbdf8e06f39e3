"""Per-class AUROC as the bootstraps call it: cxr14.metrics.per_class_auroc (all columns in one
Mann-Whitney rank pass) vs. scikit-learn's roc_auc_score column by column, side by side.

    python bench/bench_auroc.py [--sizes 400 22000] [--repeats 50]

Test-split sizes: the demo's (about 400 images) and a patient-wise 20% of NIH (about 22,000).
Scores are rounded to 3 decimals so that ties occur, as with float16/bf16 outputs.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import roc_auc_score

from cxr14.metrics import per_class_auroc


def sklearn_auroc(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    return np.array([roc_auc_score(y[:, k], p[:, k]) for k in range(y.shape[1])])


def best_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * min(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[400, 22000])
    ap.add_argument("--repeats", type=int, default=50)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print("images  classes  per_class_auroc ms  scikit-learn ms  ratio  largest difference")
    for n in args.sizes:
        y = (rng.random((n, 14)) < 0.1).astype(int)
        p = np.round(np.clip(0.2 * y + rng.random((n, 14)), 0, 1), 3)
        ours = best_ms(lambda y=y, p=p: per_class_auroc(y, p), args.repeats)
        theirs = best_ms(lambda y=y, p=p: sklearn_auroc(y, p), args.repeats)
        diff = np.abs(per_class_auroc(y, p) - sklearn_auroc(y, p)).max()
        print(f"{n:6d}  {14:7d}  {ours:18.2f}  {theirs:15.2f}  {theirs / ours:5.1f}  {diff:.1e}")


if __name__ == "__main__":
    main()
