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
    arch: str,
    dataset: str,
    metrics: pd.DataFrame,
    localization: pd.DataFrame,
    history: pd.DataFrame,
    ckpt: dict,
    parameters: tuple[int, int],
) -> dict:
    """One trained model's summary row (``metrics`` and ``localization`` indexed by label)."""
    m = metrics
    per_class = m.drop("mean")
    loc_03 = localization.loc["all", "acc_iou_0.3"] if "acc_iou_0.3" in localization else np.nan
    return {
        "model": arch,
        "dataset": dataset,
        "mean_auroc": m.loc["mean", "auroc"],
        "auroc_ci_low": m.loc["mean", "auroc_ci_low"],
        "auroc_ci_high": m.loc["mean", "auroc_ci_high"],
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


def published_rows(published: pd.DataFrame, labels: list[str], on: str) -> list[dict]:
    """Summary rows of published results on data set ``on``, each labelled with its source
    and split."""
    rows = []
    for r in published.to_dict("records"):
        dataset = f"{on} (published: {r['source']}; {r['split']})"
        aucs = {c: r[c] for c in labels}
        rows.append(
            {
                "model": r["model"],
                "dataset": dataset,
                "mean_auroc": float(np.mean(list(aucs.values()))),
                **aucs,
            }
        )
    return rows


def _fmt(v, digits=3) -> str:
    if isinstance(v, float | np.floating):
        return "" if np.isnan(v) else f"{v:.{digits}f}"
    return str(v)


def _markdown_row(r: dict) -> str:
    ci = ""
    if not pd.isna(r.get("auroc_ci_low", np.nan)):
        ci = f" ({_fmt(r['auroc_ci_low'])}-{_fmt(r['auroc_ci_high'])})"
    params = ""
    if not pd.isna(r.get("parameters", np.nan)):
        params = f"{int(r['parameters']):,} ({int(r['trainable_parameters']):,})"
    cells = [
        r["model"],
        r["dataset"],
        f"{_fmt(r['mean_auroc'])}{ci}",
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


def summary_markdown(
    table: pd.DataFrame, labels: list[str], dataset: str, published_on: str, caveat: str
) -> str:
    """The summary as Markdown: a disclaimer naming the data sets (and the layout's
    ``caveat``), the models, per-class AUROC."""
    caveat = f" - and {caveat}." if caveat else "."
    lines = [
        "# Model summary",
        "",
        f"Results of this run are on **{dataset}**. The published rows were measured on "
        f"{published_on} with other splits: they are references, not comparable numbers{caveat}",
        "",
        "| model | data set | mean AUROC (95% CI) | mean F1 @0.5 | mean F1 @val | classes never "
        "positive @0.5 | loc. acc. IoU>=0.3 | epochs | train min | parameters (trainable) "
        "| weights | note |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *(_markdown_row(r) for r in table.to_dict("records")),
        "",
        "## Per-class test AUROC",
        "",
        "| class | " + " | ".join(table["model"]) + " |",
        "| --- |" + " --- |" * len(table),
    ]
    for c in labels:
        lines.append(f"| {c} | " + " | ".join(_fmt(v) for v in table[c]) + " |")
    return "\n".join(lines).replace("nan", "") + "\n"
