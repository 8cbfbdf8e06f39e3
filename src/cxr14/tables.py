"""Every table of the workflow's reports, as DataFrames (and the summary as Markdown)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cxr14.metadata import NO_FINDING, UNCERTAIN


def class_counts(table: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    """Positive images per class (the reference study's table in its section 3.1.2), 'No
    Finding' included (counted as images without a positive unless it is a label), with
    prevalence in %; where labels can be uncertain (-1) or blank, their counts too.
    ``attrs['n_images']`` holds the total."""
    raw = table[labels].to_numpy(dtype=np.float64)
    counts = pd.Series((raw == 1).sum(axis=0), index=labels)
    if NO_FINDING not in labels:
        counts[NO_FINDING] = int(((raw == 1).sum(axis=1) == 0).sum())
    out = pd.DataFrame(
        {"images": counts, "prevalence_%": (100 * counts / len(table)).round(3)}
    ).rename_axis("label")
    if (raw == UNCERTAIN).any() or np.isnan(raw).any():
        out["uncertain"] = pd.Series((raw == UNCERTAIN).sum(axis=0), index=labels)
        out["blank"] = pd.Series(np.isnan(raw).sum(axis=0), index=labels)
    out.attrs["n_images"] = len(table)
    return out


def _with_ci(table: pd.DataFrame, row, column: str, name: str, ci: str | None = None) -> dict:
    """``{name: value, <ci>_ci_low, <ci>_ci_high}`` (``ci`` defaults to ``name``) from
    ``table.loc[row]``'s ``column`` and its CI columns; NaN where the table lacks them."""
    ci = ci or name
    keys = {name: column, f"{ci}_ci_low": f"{column}_ci_low", f"{ci}_ci_high": f"{column}_ci_high"}
    has_row = row in table.index
    return {k: table.loc[row, c] if has_row and c in table else np.nan for k, c in keys.items()}


def expert_columns(expert: pd.DataFrame | None) -> dict:
    """A replicate's expert-label results: per scored finding, AUROC against the experts and
    against the data set's original labels, and the mean of each with its CI."""
    if expert is None:
        return {}
    if "mapping_variant" in expert:  # the alternative mappings stay in expert_labels.csv
        expert = expert[expert["mapping_variant"].isna()]
    e = expert.set_index("finding")
    scored = [f for f in e.index if f != "mean" and not pd.isna(e.loc[f, "auroc_expert"])]
    out = {"expert_images": e.loc["mean", "n_images"]}
    out.update(_with_ci(e, "mean", "auroc_expert", "expert_mean_auroc"))
    out.update(_with_ci(e, "mean", "auroc_original", "expert_original_mean_auroc"))
    out.update(_with_ci(e, "mean", "auroc_difference", "expert_difference_mean_auroc"))
    for f in scored:
        out[f"expert_auroc_{f}"] = e.loc[f, "auroc_expert"]
        out[f"expert_original_auroc_{f}"] = e.loc[f, "auroc_original"]
    return out


def model_row(
    replicate: tuple[str, str, int],
    dataset: str,
    metrics: pd.DataFrame,
    localization: pd.DataFrame | None,
    history: pd.DataFrame,
    facts: dict,
    expert: pd.DataFrame | None = None,
) -> dict:
    """One trained model's summary row: ``replicate`` is its (run, split, seed); ``metrics``
    and ``localization`` (None for a data set without boxes) are indexed by label, ``facts``
    is its ``model.json`` (``checkpoint.describe_model``), ``expert`` (optional) its
    expert-label table."""
    m = metrics
    loc = pd.DataFrame(index=["all"]) if localization is None else localization
    per_class = m.drop("mean")
    run, split, seed = replicate
    return {
        "model": run,
        "arch": facts["arch"],
        "split": split,
        "seed": seed,
        "dataset": dataset,
        **_with_ci(m, "mean", "auroc", "mean_auroc", "auroc"),
        # Average precision; a random model's is the prevalence (the mean over classes here).
        **_with_ci(m, "mean", "ap", "mean_ap", "ap"),
        "mean_prevalence": m.loc["mean", "prevalence"] if "prevalence" in m else np.nan,
        **_with_ci(m, "mean", "brier", "mean_brier", "brier"),
        **_with_ci(m, "mean", "ece", "mean_ece", "ece"),
        "mean_brier_scaled": m.loc["mean"].get("brier_scaled", np.nan),
        "mean_ece_scaled": m.loc["mean"].get("ece_scaled", np.nan),
        **_with_ci(m, "mean", "cal_slope", "mean_cal_slope", "cal_slope"),
        **_with_ci(m, "mean", "cal_intercept", "mean_cal_intercept", "cal_intercept"),
        "mean_cal_slope_scaled": m.loc["mean"].get("cal_slope_scaled", np.nan),
        "mean_cal_intercept_scaled": m.loc["mean"].get("cal_intercept_scaled", np.nan),
        "mean_f1_at_0.5": m.loc["mean", "f1_at_0.5"],
        "mean_f1_at_val": m.loc["mean", "f1_at_val"],
        "classes_never_positive_at_0.5": int((per_class["predicted_pos_at_0.5"] == 0).sum()),
        "loc_boxes": loc.loc["all", "n_boxes"] if "n_boxes" in loc else np.nan,
        "loc_boxes_in_file": loc.loc["all"].get("n_boxes_in_file", np.nan),
        **_with_ci(loc, "all", "acc_iou_0.3", "loc_acc_iou_0.3"),
        **_with_ci(loc, "all", "acc_iobb_0.5", "loc_acc_iobb_0.5"),
        **expert_columns(expert),
        "epochs": len(history),
        "best_epoch": facts["best_epoch"],
        "train_minutes": history["seconds"].sum() / 60,
        "parameters": facts["parameters"],
        "trainable_parameters": facts["trainable_parameters"],
        "weights": facts["weights_used"],
        "note": facts["caveat"],
        **per_class["auroc"].to_dict(),
    }


# Columns of the per-run row that are the replicates' mean (the rest: first replicate's);
# besides these, every column starting with ``_MEAN_PREFIXES``. Intervals (``*_ci_*``) are of
# one replicate: a run with several has its spread instead.
_MEANS = (
    "mean_f1_at_0.5",
    "mean_f1_at_val",
    "classes_never_positive_at_0.5",
    "epochs",
    "best_epoch",
    "train_minutes",
)
_MEAN_PREFIXES = ("mean_", "loc_", "expert_")


def run_rows(replicates: pd.DataFrame, labels: list[str], intervals=None) -> list[dict]:
    """One row per run from its replicates' rows (``model_row``): the mean over replicates,
    the spread of the mean AUROC (sd, min, max) and, for a single replicate, its bootstrap
    CIs; for several, the seed-and-patient CI of the mean AUROC from ``intervals`` (run ->
    (low, high)) as ``auroc_run_ci_low``, ``auroc_run_ci_high``."""
    means = [
        c
        for c in replicates.columns
        if (c in _MEANS or c.startswith(_MEAN_PREFIXES)) and "_ci_" not in c
    ]
    rows = []
    for _, group in replicates.groupby("model", sort=False):
        first, n = group.iloc[0], len(group)
        auroc = group["mean_auroc"]
        row = {
            **first.drop(["split", "seed", *labels]).to_dict(),
            "replicates": n,
            **group[means].mean().to_dict(),
            "auroc_sd": auroc.std() if n > 1 else np.nan,
            "auroc_min": auroc.min(),
            "auroc_max": auroc.max(),
            **group[labels].mean().to_dict(),
        }
        if n > 1:
            row.update({c: np.nan for c in row if "_ci_" in c})
            low, high = (intervals or {}).get(first["model"], (np.nan, np.nan))
            row["auroc_run_ci_low"], row["auroc_run_ci_high"] = low, high
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
    """``official`` for the data set's own train/test lists, else ``random`` (a patient-wise
    random split or folds): the two kinds of split published results come from."""
    return "official" if method == "official" else "random"


def test_set_gaps(published_views: str, layout_views, run_views, n_unreadable: int) -> list[str]:
    """How this run's test images fall short of a published test set: views it left out
    (``published_views``: ``all`` of the layout's, or a comma-separated list) and images
    skipped as missing or unreadable."""
    wanted = (
        set(layout_views)
        if published_views in ("", "all")
        else {v.strip() for v in published_views.split(",")}
    )
    gaps = []
    if left_out := sorted(wanted - set(run_views)):
        gaps.append(f"this run leaves out the {', '.join(left_out)} view(s) (data.views)")
    if n_unreadable:
        gaps.append(f"{n_unreadable} image(s) skipped as missing or unreadable")
    return gaps


def comparability(published_kind: str, run_kind: str, caveat: str, wording, gaps=()) -> str:
    """Whether a published row can stand beside this run's results, and why not
    (``wording``: the layout's ``Wording``; ``gaps``: ``test_set_gaps``)."""
    if caveat:
        return f"not comparable: {caveat}"
    if published_kind != run_kind:
        said = {"official": wording.official_split, "random": "a random split"}
        return (
            f"not comparable: published on {said[published_kind]}, this run on "
            f"{said[run_kind]} (other test images)"
        )
    if run_kind == "random":
        return "same kind of split (random), but other test images: a reference only"
    if gaps:
        return f"not comparable: {wording.official_test}, but {'; '.join(gaps)}"
    return f"comparable: same test images ({wording.official_test})"


def published_rows(
    published: pd.DataFrame,
    labels: list[str],
    on: str,
    run_kind: str,
    caveat: str,
    wording,
    coverage: dict | None = None,
) -> list[dict]:
    """Summary rows of published results on data set ``on``, each labelled with its source,
    split and test set, and whether it is comparable with this run (``run_kind``: the kind
    of split this run used, ``caveat``: the layout's reason its results never are,
    ``coverage``: ``test_set_gaps``' other arguments, by name). A class a source did not publish
    is blank; the mean is over the classes it did."""
    rows = []
    for r in published.to_dict("records"):
        aucs = {c: r.get(c, np.nan) for c in labels}
        gaps = test_set_gaps(str(r.get("views", "all")), **coverage) if coverage else []
        rows.append(
            {
                "model": r["model"],
                "dataset": f"{on} (published: {r['source']}; {r['split']})",
                "test_set": r["test_set"],
                "comparable": comparability(r["split_kind"], run_kind, caveat, wording, gaps),
                "mean_auroc": float(np.nanmean(list(aucs.values()))),
                **aucs,
            }
        )
    return rows


def _published_lines(published: list[dict]) -> list[str]:
    rows = [
        [r["model"], _fmt(r["mean_auroc"]), r["dataset"], r["test_set"], r["comparable"]]
        for r in published
    ]
    note = (
        "Each published number as printed in its source; the mean is over the classes the "
        "source published, computed here (where that is fewer than the run's classes, compare "
        "the per-class table, not the means); see docs/evaluation.md."
    )
    header = ["model", "mean AUROC", "source and split", "test set", "beside this run"]
    return _table("Published references", note, header, rows)


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
        if not pd.isna(r.get("auroc_run_ci_low", np.nan)):
            low, high = _fmt(r["auroc_run_ci_low"]), _fmt(r["auroc_run_ci_high"])
            ci += f"; 95% CI {low}-{high} over seeds and patients"
    return f"{_fmt(r['mean_auroc'])}{ci}"


def _ap_cell(r: dict) -> str:
    """Mean AP with its bootstrap CI (one replicate), beside the random model's AP."""
    cell = _ci_cell(r, "mean_ap", "ap")
    return f"{cell} [random {_fmt(r['mean_prevalence'])}]" if cell else ""


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


def _ci_cell(r: dict, name: str, ci: str | None = None) -> str:
    """A value with its 95% CI where it has one."""
    value = r.get(name, np.nan)
    if pd.isna(value):
        return ""
    low, high = r.get(f"{ci or name}_ci_low", np.nan), r.get(f"{ci or name}_ci_high", np.nan)
    return _fmt(value) + ("" if pd.isna(low) else f" ({_fmt(low)}-{_fmt(high)})")


def _table(title: str, note: str, header: list[str], rows: list[list[str]]) -> list[str]:
    if not rows:
        return []
    lines = [f"## {title}", "", note, "", "| " + " | ".join(header) + " |"]
    lines.append("|" + " --- |" * len(header))
    return [*lines, *("| " + " | ".join(r) + " |" for r in rows), ""]


def _calibration_lines(runs: list[dict]) -> list[str]:
    rows = [
        [
            r["model"],
            _ci_cell(r, "mean_brier", "brier"),
            _ci_cell(r, "mean_ece", "ece"),
            _fmt(r.get("mean_brier_scaled", np.nan)),
            _fmt(r.get("mean_ece_scaled", np.nan)),
            _ci_cell(r, "mean_cal_slope", "cal_slope"),
            _ci_cell(r, "mean_cal_intercept", "cal_intercept"),
            f"{_fmt(r.get('mean_cal_slope_scaled', np.nan))} / "
            f"{_fmt(r.get('mean_cal_intercept_scaled', np.nan))}",
        ]
        for r in runs
        if not pd.isna(r.get("mean_ece", np.nan))
    ]
    note = (
        "Mean over classes of the Brier score and the expected calibration error (10 bins; "
        "lower is better) and of the calibration slope and intercept (1 and 0 when "
        "calibrated; an intercept below 0: probabilities too high, as the weighted loss "
        "makes them), as predicted and after the per-class recalibration fitted on the "
        "validation split (eval.calibration; AUROC and AP unchanged)."
    )
    header = ["run", "Brier (95% CI)", "ECE (95% CI)", "Brier scaled", "ECE scaled"]
    header += ["slope (95% CI)", "intercept (95% CI)", "slope / intercept scaled"]
    return _table("Calibration", note, header, rows)


def _localisation_lines(runs: list[dict], wording) -> list[str]:
    rows = [
        [
            r["model"],
            f"{_fmt(r['loc_boxes'], 0)} of {_fmt(r.get('loc_boxes_in_file', np.nan), 0)}",
            _ci_cell(r, "loc_acc_iou_0.3"),
            _ci_cell(r, "loc_acc_iobb_0.5"),
        ]
        for r in runs
        if not pd.isna(r.get("loc_boxes", np.nan))
    ]
    note = (
        "Grad-CAM boxes against the expert boxes on this split's test images (Wilson 95% "
        f"intervals). On {wording.official_split} the boxes may all be on test images, on a "
        "random split only those of its test patients: compare counts before accuracies."
    )
    header = ["run", "boxes scored (of all)", "acc. IoU >= 0.3", "acc. IoBB >= 0.5"]
    return _table("Localisation", note, header, rows)


def _expert_lines(runs: list[dict], wording) -> list[str]:
    findings = sorted(
        {
            c.removeprefix("expert_auroc_")
            for r in runs
            for c in r
            if c.startswith("expert_auroc_") and not pd.isna(r[c])
        }
    )
    rows = [
        [
            r["model"],
            _fmt(r["expert_images"], 0),
            _ci_cell(r, "expert_mean_auroc"),
            _ci_cell(r, "expert_original_mean_auroc"),
            _ci_cell(r, "expert_difference_mean_auroc"),
            *(
                f"{_fmt(r.get(f'expert_auroc_{f}', np.nan))} / "
                f"{_fmt(r.get(f'expert_original_auroc_{f}', np.nan))}"
                for f in findings
            ),
        ]
        for r in runs
        if not pd.isna(r.get("expert_images", np.nan))
    ]
    note = (
        f"AUROC against expert re-read labels ({wording.expert_source}) and against "
        f"{wording.labels} on the same test images (mapping: eval.expert_mapping; "
        "docs/evaluation.md)."
    )
    header = ["run", "images", "mean vs. experts (95% CI)", f"mean vs. {wording.labels} (95% CI)"]
    header += ["experts minus original, paired (95% CI)"]
    header += [f"{f}: experts / original" for f in findings]
    return _table("Expert labels", note, header, rows)


def _provenance_lines(p: dict) -> list[str]:
    if not p:
        return []
    return [
        f"Metadata: `{p['metadata_file']}`, sha256 `{p['metadata_sha256']}` "
        f"({p['metadata_release']}); views kept: {p['views']}.",
        "",
    ]


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
    wording,
    provenance: dict | None = None,
) -> str:
    """The summary as Markdown: a disclaimer naming the data sets (and the layout's
    ``caveat``), the runs (mean AUROC with its CI, or mean ± sd (min-max, n) over the run's
    replicates), per-class AUROC, then every replicate."""
    records = table.to_dict("records")
    published = [r for r in records if isinstance(r.get("comparable"), str)]
    if published:
        about = f"The published rows were measured on {published_on}: each says below whether "
        about += f"it is comparable{f' - and {caveat}.' if caveat else '.'}"
    else:
        about = "No published per-class results are listed for this data set (docs/data.md)."
        about += f" Note: {caveat}." if caveat else ""
    lines = [
        "# Model summary",
        "",
        f"Results of this run are on **{dataset}**. {about}",
        "",
        *_provenance_lines(provenance or {}),
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
    runs = [r for r in records if not isinstance(r.get("comparable"), str)]
    lines += ["", *_published_lines(published)]
    lines += _calibration_lines(runs)
    lines += [*_localisation_lines(runs, wording), *_expert_lines(runs, wording)]
    lines += _replicate_lines(replicates)
    return "\n".join(lines) + "\n"
