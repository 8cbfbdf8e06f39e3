"""Every table of the workflow's reports, as DataFrames (and the summary as Markdown)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cxr14.checkpoint import model_caveat
from cxr14.metadata import NO_FINDING


def class_counts(table: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    """Images per class (the reference study's table in its section 3.1.2), 'No Finding'
    included, with prevalence in %; ``attrs['n_images']`` holds the total."""
    y = table[labels]
    counts = y.sum().astype(int)
    counts[NO_FINDING] = int((y.sum(axis=1) == 0).sum())
    out = pd.DataFrame(
        {"images": counts, "prevalence_%": (100 * counts / len(table)).round(3)}
    ).rename_axis("label")
    out.attrs["n_images"] = len(table)
    return out


def model_row(
    replicate: tuple[str, str, int],
    dataset: str,
    metrics: pd.DataFrame,
    localization: pd.DataFrame,
    history: pd.DataFrame,
    ckpt: dict,
    parameters: tuple[int, int],
) -> dict:
    """One trained model's summary row: ``replicate`` is its (run, split, seed); ``metrics``
    and ``localization`` are indexed by label."""
    m = metrics
    per_class = m.drop("mean")
    loc_03 = localization.loc["all", "acc_iou_0.3"] if "acc_iou_0.3" in localization else np.nan
    run, split, seed = replicate
    return {
        "model": run,
        "arch": ckpt["config"]["arch"],
        "split": split,
        "seed": seed,
        "dataset": dataset,
        "mean_auroc": m.loc["mean", "auroc"],
        "auroc_ci_low": m.loc["mean", "auroc_ci_low"],
        "auroc_ci_high": m.loc["mean", "auroc_ci_high"],
        # Average precision; a random model's is the prevalence (the mean over classes here).
        "mean_ap": m.loc["mean", "ap"] if "ap" in m else np.nan,
        "ap_ci_low": m.loc["mean", "ap_ci_low"] if "ap" in m else np.nan,
        "ap_ci_high": m.loc["mean", "ap_ci_high"] if "ap" in m else np.nan,
        "mean_prevalence": m.loc["mean", "prevalence"] if "prevalence" in m else np.nan,
        "mean_f1_at_0.5": m.loc["mean", "f1_at_0.5"],
        "mean_f1_at_val": m.loc["mean", "f1_at_val"],
        "classes_never_positive_at_0.5": int((per_class["predicted_pos_at_0.5"] == 0).sum()),
        "loc_acc_iou_0.3": loc_03,
        "epochs": len(history),
        "best_epoch": ckpt["best_epoch"],
        "train_minutes": history["seconds"].sum() / 60,
        "parameters": parameters[0],
        "trainable_parameters": parameters[1],
        "weights": ckpt.get("weights_used", "unknown"),
        "note": model_caveat(ckpt, ""),
        **per_class["auroc"].to_dict(),
    }


# Columns of the per-run row that are the replicates' mean (the rest: first replicate's).
_MEANS = (
    "mean_ap",
    "mean_prevalence",
    "mean_f1_at_0.5",
    "mean_f1_at_val",
    "classes_never_positive_at_0.5",
    "loc_acc_iou_0.3",
    "epochs",
    "best_epoch",
    "train_minutes",
)


def run_rows(replicates: pd.DataFrame, labels: list[str]) -> list[dict]:
    """One row per run from its replicates' rows (``model_row``): the mean over replicates,
    the spread of the mean AUROC (sd, min, max) and, for a single replicate, its bootstrap CI."""
    rows = []
    for _, group in replicates.groupby("model", sort=False):
        first, n = group.iloc[0], len(group)
        auroc = group["mean_auroc"]
        row = {
            **first.drop(["split", "seed", *labels]).to_dict(),
            "replicates": n,
            "mean_auroc": auroc.mean(),
            "auroc_sd": auroc.std() if n > 1 else np.nan,
            "auroc_min": auroc.min(),
            "auroc_max": auroc.max(),
            **group[list(_MEANS)].mean().to_dict(),
            **group[labels].mean().to_dict(),
        }
        if n > 1:
            for c in ("auroc_ci_low", "auroc_ci_high", "ap_ci_low", "ap_ci_high"):
                row[c] = np.nan
        rows.append(row)
    return rows


def replicate_table(metrics: dict, labels: list[str]) -> pd.DataFrame:
    """Per class and ``mean``: each replicate's AUROC (columns named by ``metrics``' keys),
    then their mean, sample sd, min, max and count."""
    aurocs = pd.DataFrame({k: m.set_index("label")["auroc"] for k, m in metrics.items()})
    aurocs = aurocs.loc[[*labels, "mean"]]
    stats = pd.DataFrame(
        {
            "mean": aurocs.mean(axis=1),
            "sd": aurocs.std(axis=1),
            "min": aurocs.min(axis=1),
            "max": aurocs.max(axis=1),
            "n": aurocs.notna().sum(axis=1),
        }
    )
    return pd.concat([aurocs, stats], axis=1).rename_axis("label")


def split_kind(method: str) -> str:
    """``official`` for NIH's own train/test lists, else ``random`` (a patient-wise random
    split or folds): the two kinds of split published ChestX-ray14 results come from."""
    return "official" if method == "official" else "random"


def comparability(published_kind: str, run_kind: str, caveat: str) -> str:
    """Whether a published row can stand beside this run's results, and why not."""
    if caveat:
        return f"not comparable: {caveat}"
    if published_kind != run_kind:
        said = {"official": "NIH's official split", "random": "a random split"}
        return (
            f"not comparable: published on {said[published_kind]}, this run on "
            f"{said[run_kind]} (other test images)"
        )
    if run_kind == "random":
        return "same kind of split (random), but other test images: a reference only"
    return "comparable: same test images (NIH's official test list)"


def published_rows(
    published: pd.DataFrame, labels: list[str], on: str, run_kind: str, caveat: str = ""
) -> list[dict]:
    """Summary rows of published results on data set ``on``, each labelled with its source,
    split and test set, and whether it is comparable with this run (``run_kind``: the kind
    of split this run used, ``caveat``: the layout's reason its results never are)."""
    rows = []
    for r in published.to_dict("records"):
        aucs = {c: r[c] for c in labels}
        rows.append(
            {
                "model": r["model"],
                "dataset": f"{on} (published: {r['source']}; {r['split']})",
                "test_set": r["test_set"],
                "comparable": comparability(r["split_kind"], run_kind, caveat),
                "mean_auroc": float(np.mean(list(aucs.values()))),
                **aucs,
            }
        )
    return rows


def _published_lines(table: pd.DataFrame) -> list[str]:
    lines = [
        "## Published references",
        "",
        "Each published number as printed in its source (the mean over classes computed "
        "here); see docs/evaluation.md.",
        "",
        "| model | mean AUROC | source and split | test set | beside this run |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in table.to_dict("records"):
        if isinstance(r.get("comparable"), str):
            cells = [r["model"], _fmt(r["mean_auroc"]), r["dataset"], r["test_set"]]
            lines.append("| " + " | ".join([*cells, r["comparable"]]) + " |")
    return lines


def _fmt(v, digits=3) -> str:
    if isinstance(v, float | np.floating):
        return "" if np.isnan(v) else f"{v:.{digits}f}"
    return str(v)


def _auroc_cell(r: dict) -> str:
    """Mean AUROC with its bootstrap CI (one replicate) or its spread over replicates."""
    ci = ""
    if not pd.isna(r.get("auroc_ci_low", np.nan)):
        ci = f" ({_fmt(r['auroc_ci_low'])}-{_fmt(r['auroc_ci_high'])})"
    elif r.get("replicates", 1) > 1:
        spread = f"{_fmt(r['auroc_min'])}-{_fmt(r['auroc_max'])}"
        ci = f" ± {_fmt(r['auroc_sd'])} ({spread}, n={int(r['replicates'])})"
    return f"{_fmt(r['mean_auroc'])}{ci}"


def _ap_cell(r: dict) -> str:
    """Mean AP with its bootstrap CI (one replicate), beside the random model's AP."""
    if pd.isna(r.get("mean_ap", np.nan)):
        return ""
    ci = ""
    if not pd.isna(r.get("ap_ci_low", np.nan)):
        ci = f" ({_fmt(r['ap_ci_low'])}-{_fmt(r['ap_ci_high'])})"
    return f"{_fmt(r['mean_ap'])}{ci} [random {_fmt(r['mean_prevalence'])}]"


def _markdown_row(r: dict) -> str:
    params = ""
    if not pd.isna(r.get("parameters", np.nan)):
        params = f"{int(r['parameters']):,} ({int(r['trainable_parameters']):,})"
    arch = r.get("arch", "")
    cells = [
        f"{r['model']} ({arch})" if isinstance(arch, str) and arch else r["model"],
        r["dataset"],
        _auroc_cell(r),
        _ap_cell(r),
        _fmt(r.get("mean_f1_at_0.5", np.nan)),
        _fmt(r.get("mean_f1_at_val", np.nan)),
        _fmt(r.get("classes_never_positive_at_0.5", np.nan), 0),
        _fmt(r.get("loc_acc_iou_0.3", np.nan)),
        _fmt(r.get("epochs", ""), 0),
        _fmt(r.get("train_minutes", np.nan), 1),
        params,
        _fmt(r.get("weights", "")),
        _fmt(r.get("note", "")),
    ]
    return "| " + " | ".join(cells) + " |"


def _replicate_lines(replicates: pd.DataFrame) -> list[str]:
    lines = [
        "## Replicates",
        "",
        "| run | split | seed | mean AUROC (95% CI) | best epoch |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in replicates.to_dict("records"):
        cells = [r["model"], r["split"], str(r["seed"]), _auroc_cell(r), _fmt(r["best_epoch"], 0)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def summary_markdown(
    table: pd.DataFrame,
    replicates: pd.DataFrame,
    labels: list[str],
    dataset: str,
    published_on: str,
    caveat: str,
) -> str:
    """The summary as Markdown: a disclaimer naming the data sets (and the layout's
    ``caveat``), the runs (mean AUROC with its CI, or mean ± sd (min-max, n) over the run's
    replicates), per-class AUROC, then every replicate."""
    caveat = f" - and {caveat}." if caveat else "."
    lines = [
        "# Model summary",
        "",
        f"Results of this run are on **{dataset}**. The published rows were measured on "
        f"{published_on}: each says below whether it is comparable{caveat}",
        "",
        "| run (architecture) | data set | mean AUROC (95% CI, or ± sd over replicates) "
        "| mean AP (95% CI) [random model] | mean F1 @0.5 | mean F1 @val | classes never "
        "positive @0.5 | loc. acc. IoU>=0.3 | epochs | train min | parameters (trainable) "
        "| weights | note |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *(_markdown_row(r) for r in table.to_dict("records")),
        "",
        "## Per-class test AUROC",
        "",
        "| class | " + " | ".join(table["model"]) + " |",
        "| --- |" + " --- |" * len(table),
    ]
    for c in labels:
        lines.append(f"| {c} | " + " | ".join(_fmt(v) for v in table[c]) + " |")
    lines += ["", *_published_lines(table), "", *_replicate_lines(replicates)]
    return "\n".join(lines) + "\n"
