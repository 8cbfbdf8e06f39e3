"""The workflow's experiment plan from its configuration (no torch: the workflow imports it).

A configuration names *runs* (an architecture and its training overrides), the random *seeds*
each run is trained with and the *splits* it is trained on (one hold-out split, or the K folds
of patient-wise cross-validation). Every default is written once, in ``config/config.yaml``
(the schema only says what is valid); a configuration file is merged over it key by key, as
Snakemake's ``--configfile`` does. Training settings are layered, each level overriding the one
before: ``train``, ``models.<arch>`` (the one place for per-architecture settings), then the
run's own overrides.
"""

from __future__ import annotations

import copy
import difflib
import functools
import os
import re
from collections.abc import Sequence
from pathlib import Path

import yaml

# Keys of the `train` section that configure the jobs, not the training itself.
JOB_KEYS = ("gpus", "threads", "seeds")
# Keys of a run entry that are not training settings.
RUN_KEYS = ("name", "arch", "seeds", "train_on", "test_on")
# Sections a `datasets` entry may override besides its `data` keys.
DATASET_SECTIONS = ("split", "synthetic")
# How a run trained on several data sets samples them (`train.pooling`; only their jobs carry it).
POOL_KEYS = ("pooling",)
# Settings every training needs besides its architecture and seed (the job's): config/config.yaml
# gives each a default under `train`, and each `models.<arch>` section and run may override it.
TRAIN_KEYS = (
    "device",
    "sampling",
    "loss",
    "augment",
    "input_size",
    "batch_size",
    "val_batch_size",
    "epochs",
    "lr",
    "milestones",
    "gamma",
    "amp",
    "channels_last",
    "compile",
    "fused_adam",
    "backbone_lr_scale",
    "label_fraction",
)
RUN_NAME = re.compile(r"[A-Za-z0-9_-]+")
REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
# Every default, once: the configuration the workflow loads before any --configfile.
DEFAULTS = REPO / "config" / "config.yaml"


def runs(config: dict) -> dict[str, dict]:
    """The configured runs by name (in the configuration's order)."""
    return {r["name"]: r for r in config["runs"]}


def datasets(config: dict) -> dict[str, dict]:
    """Each data set's own configuration, by name: the workflow's with the data set's
    ``datasets`` entry merged over ``data`` (and over ``split``, ``synthetic`` where it has
    them), its name under ``dataset``. Without ``datasets``, ``data`` is the one data set,
    named by its ``source``."""
    from snakemake.utils import update_config

    entries = config.get("datasets") or {config["data"]["source"]: {}}
    out = {}
    for name, entry in entries.items():
        own = {k: copy.deepcopy(config[k]) for k in ("data", *DATASET_SECTIONS)}
        for section in DATASET_SECTIONS:
            update_config(own[section], copy.deepcopy(entry.get(section, {})))
        own["data"].update(copy.deepcopy({k: v for k, v in entry.items() if k not in own}))
        out[name] = {**config, **own, "dataset": name}
    return out


def dataset_keys(name: str, problems: list[str], config: dict) -> list[str]:
    """A data set's problems (which name its keys ``data.<key>``) with the keys it has in
    ``datasets.<name>`` when the configuration names several data sets."""
    if not config.get("datasets"):
        return problems
    named = [re.sub(r"^data\.", f"datasets.{name}.", p) for p in problems]
    return [re.sub(r"^(split|synthetic)\.", rf"datasets.{name}.\1.", p) for p in named]


def dataset_names(config: dict) -> list[str]:
    """The data sets' names (``datasets``' keys, or ``data.source``), in order."""
    return list(config.get("datasets") or [config["data"]["source"]])


def train_on(config: dict, run: str) -> list[str]:
    """The data sets ``run`` is trained on: its ``train_on``, else the first data set."""
    return list(runs(config)[run].get("train_on", dataset_names(config)[:1]))


def test_on(config: dict, run: str) -> list[str]:
    """The data sets whose test splits ``run`` is scored on: its ``test_on``, else all."""
    return list(runs(config)[run].get("test_on", dataset_names(config)))


def run_seeds(config: dict, run: str) -> list[int]:
    """The seeds ``run`` is trained with: its own ``seeds``, else ``train.seeds``."""
    return list(runs(config)[run].get("seeds", config["train"]["seeds"]))


def split_ids(config: dict) -> list[str]:
    """Names of the splits every run is trained on: ``fold1`` ... ``foldK`` for patient-wise
    cross-validation, else the one ``holdout`` split."""
    if config["split"]["method"] == "patient_kfold":
        return [f"fold{f}" for f in range(1, config["split"]["folds"] + 1)]
    return ["holdout"]


def fold_number(split_id: str) -> int | None:
    """1..K for ``fold<k>``, None for the hold-out split."""
    return int(split_id[4:]) if split_id.startswith("fold") else None


def replicates(config: dict, run: str | None = None) -> list[tuple[str, str, int]]:
    """Every (run, split, seed) to train, run by run: one training job each."""
    names = [run] if run else list(runs(config))
    return [(r, s, seed) for r in names for s in split_ids(config) for seed in run_seeds(config, r)]


def train_settings(
    config: dict, run: str, seed: int, policies: dict[str, dict] | None = None
) -> dict:
    """The settings of one training job: ``train`` + ``models.<arch>`` + the run's overrides,
    the job's seed, and ``policies``: for each data set it trains on whose labels can be
    uncertain or blank, its ``uncertain`` and ``blank`` (``data.*``). A run on one data set
    carries them as ``uncertain`` and ``blank``; a run on several carries ``train_on``,
    ``pooling`` and ``label_policies`` (data set -> policy).

    Only these go into the job's params, so changing one run's setting (or the policy of one
    of its data sets) reruns only that run's trainings (and what depends on them), and adding
    a seed only adds jobs; keys are sorted.
    """
    entry = runs(config)[run]
    arch = entry["arch"]
    sets = train_on(config, run) if config.get("datasets") else []
    shared = {k: v for k, v in config["train"].items() if k not in JOB_KEYS}
    overrides = {k: v for k, v in entry.items() if k not in RUN_KEYS}
    model = config["models"].get(arch, {})
    settings = {"run": run, "arch": arch, **shared, **model, **overrides, "seed": int(seed)}
    policies = policies or {}
    if len(sets) > 1:
        settings |= {"train_on": sets, "label_policies": dict(sorted(policies.items()))}
    else:  # one data set: nothing to pool
        settings = {k: v for k, v in settings.items() if k not in POOL_KEYS}
    if len(sets) <= 1 and policies:
        settings |= next(iter(policies.values()))
    if settings["label_fraction"] < 1:  # its patients are drawn in an order fixed by the split
        settings["label_seed"] = config["split"]["seed"]
    # In key order: Snakemake compares params as written, so the order in which configuration
    # files happen to list keys must not look like a change (a spurious retraining).
    return dict(sorted(settings.items()))


# What a label-efficiency group's runs may differ in besides their fraction: the schedule (fewer
# labels usually get more epochs of a smaller training set).
SCHEDULE_KEYS = ("epochs", "milestones")


def label_efficiency(config: dict) -> list[dict]:
    """The runs that differ only in ``label_fraction`` (and their schedule, ``SCHEDULE_KEYS``),
    grouped: one dict per run of a group with at least two fractions, each once: ``run``,
    ``group`` (its architecture and, where it has one, linear probe or fine-tune) and
    ``fraction``, in the configuration's order. Runs of one fraction that differ in their
    schedule are grouped by it too."""
    settings = {run: train_settings(config, run, 0) for run in runs(config)}
    groups: dict[str, list[str]] = {}
    for run, s in settings.items():
        for loose in (True, False):
            groups.setdefault(_efficiency_key(s, train_on(config, run), loose), []).append(run)
    rows, names, placed = [], set(), set()
    for members in groups.values():
        fractions = [settings[r]["label_fraction"] for r in members]
        if len(set(fractions)) < 2 or len(set(fractions)) < len(members) or placed & set(members):
            continue
        placed |= set(members)
        s = settings[members[0]]
        regime = {"backbone": ", linear probe", "none": ", fine-tune"}.get(s.get("freeze"), "")
        name = s["arch"] + regime
        name = f"{name} ({members[0]})" if name in names else name
        names.add(name)
        rows += [
            {"run": r, "group": name, "fraction": f}
            for r, f in zip(members, fractions, strict=True)
        ]
    return rows


def _efficiency_key(settings: dict, sets: list[str], loose: bool) -> str:
    skip = ("run", "label_fraction", "label_seed", *(SCHEDULE_KEYS if loose else ()))
    same = {k: v for k, v in settings.items() if k not in skip}
    return repr((loose, sorted(same.items()), sets))


def run_name(settings: dict) -> str:
    """What logs and figures call a training: its run's name (its architecture for settings
    made outside the workflow)."""
    return settings.get("run", settings["arch"])


def check_complete(settings: dict) -> None:
    missing = [k for k in ("arch", "seed", *TRAIN_KEYS) if k not in settings]
    if missing:
        raise ValueError(
            f"training settings lack {', '.join(missing)} (the workflow fills them from "
            "config/config.yaml)"
        )


@functools.cache
def _read_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def default_config() -> dict:
    """A copy of the default configuration (``config/config.yaml``)."""
    return copy.deepcopy(_read_yaml(DEFAULTS))


def with_defaults(config: dict, schema: str | os.PathLike = SCHEMA) -> dict:
    """``config`` merged over the default configuration key by key and validated against the
    workflow's ``schema``, as the Snakefile does with a ``--configfile`` (for programs that
    train outside the workflow; needs snakemake)."""
    from snakemake.utils import update_config, validate

    merged = default_config()
    update_config(merged, copy.deepcopy(config))
    validate(merged, str(schema))
    return merged


def preset(*names: str) -> dict:
    """The configuration of ``config/<name>`` presets merged in order over the defaults, as
    ``--configfile config/<name> ...`` gives it (e.g. ``preset("nih.yaml")``)."""
    from snakemake.utils import update_config

    config: dict = {}
    for name in names:
        update_config(config, copy.deepcopy(_read_yaml(REPO / "config" / name)))
    return with_defaults(config)


def config_problems(
    config: dict, schema: str | os.PathLike = SCHEMA, files: Sequence[str | os.PathLike] = ()
) -> list[str]:
    """Every problem of a configuration, each on one line naming its key: first what the
    schema refuses (``schema_problems``; the rest is checked only on a valid configuration),
    then what a schema cannot say. ``files``: the configuration files, by precedence (last
    wins), to say which file a refused key is in."""
    with open(schema) as f:
        schema = yaml.safe_load(f)
    if problems := schema_problems(config, schema, files):
        return problems
    return [
        *_split_problems(config["split"]),
        *_run_problems(config["runs"], schema),
        *_compare_problems(config.get("compare", []), [r.get("name") for r in config["runs"]]),
        *_predict_problems(config.get("predict", {})),
        *_cam_layer_problems(config["eval"].get("cam_layers", {}), schema),
        *dataset_problems(config),
    ]


def dataset_problems(config: dict) -> list[str]:
    """Data set names usable as folder and wildcard names, one split plan for all (a run on
    several trains on split k of each), and runs naming known data sets only."""
    sets = datasets(config)
    problems = []
    for name, own in sets.items():
        key = f"datasets.{name}"
        if not RUN_NAME.fullmatch(name) or re.fullmatch(r"holdout|fold\d+", name):
            problems.append(
                f"{key}: a data set name must be letters, digits, '_' and '-' (it names folders) "
                "and not a split's name (holdout, fold1, ...)"
            )
        if _split_problems(own["split"]) or _split_problems(config["split"]):
            if "split" in (config.get("datasets") or {}).get(name, {}):
                problems += [f"{key}.split: {p}" for p in _split_problems(own["split"])]
        elif split_ids(own) != split_ids(config):
            problems.append(
                f"{key}: its splits ({', '.join(split_ids(own))}) differ from the workflow's "
                f"({', '.join(split_ids(config))}): every data set needs the same split plan "
                "(a hold-out split each, or the same number of folds)"
            )
    for i, entry in enumerate(config["runs"]):
        for k in ("train_on", "test_on"):
            unknown = [d for d in entry.get(k, []) if d not in sets]
            if unknown:
                problems.append(
                    f"runs[{i}] ({entry.get('name')!r}).{k}: unknown data set {unknown[0]!r}; "
                    f"data sets: {', '.join(sets)}"
                )
    return problems


def schema_problems(
    config: dict, schema: dict, files: Sequence[str | os.PathLike] = ()
) -> list[str]:
    """What ``schema`` refuses in ``config``, one line per problem: the key, the file it is in
    (of ``files``), what was expected, and the nearest known key or value for a misspelt one."""
    from jsonschema import Draft202012Validator

    problems = []
    for error in Draft202012Validator(schema).iter_errors(config):
        path = tuple(error.absolute_path)
        if error.validator == "additionalProperties":
            known = list(error.schema.get("properties", {}))
            for key in [k for k in error.instance if k not in known]:
                problems.append(_unknown_key((*path, key), known, files))
        elif error.validator == "enum":
            near = _nearest(str(error.instance), [str(v) for v in error.validator_value])
            options = ", ".join(map(repr, error.validator_value))
            text = f"{error.instance!r} is not one of {options}{near}"
            problems.append(f"{_key(path)}{_source(path, files)}: {text}")
        else:
            message = error.message if len(error.message) < 160 else error.message[:157] + "..."
            problems.append(f"{_key(path)}{_source(path, files)}: {message}")
    return sorted(problems)


def _unknown_key(path: tuple, known: list[str], files) -> str:
    near = _nearest(str(path[-1]), known) or f" (known: {', '.join(known)})"
    return f"{_key(path)}{_source(path, files)}: unknown key{near}"


def _nearest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _key(path: tuple) -> str:
    return ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in path).replace(".[", "[")


def _source(path: tuple, files) -> str:
    """' (in FILE)' for the last of ``files`` that sets ``path``, '' if none does."""
    for file in reversed(list(files)):
        node = yaml.safe_load(Path(file).read_text())
        for part in path:
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                node = node[part]
            else:
                break
        else:
            return f" (in {file})"
    return ""


def weights_problems(config: dict) -> list[str]:
    """Pretrained weights a run asks for (``weights: imagenet`` or a file) that are not on
    disk, and a ``timm_name`` timm cannot create, each naming the run, as training would find
    them; the registry (torch, and timm for its backbones) is imported only when a run asks."""
    asked: dict[tuple[str, str, str], str] = {}
    for run in runs(config):
        settings = train_settings(config, run, 0)
        if settings.get("weights", "none") not in ("none", "auto") or "timm_name" in settings:
            key = (settings["arch"], settings.get("weights", "none"), settings.get("timm_name", ""))
            asked.setdefault(key, run)
    if not asked:
        return []
    from cxr14.models import resolve_weights
    from cxr14.timm_nets import check_name

    problems = []
    for (arch, weights, timm_name), run in asked.items():
        try:
            if timm_name:
                check_name(timm_name)
            resolve_weights(arch, weights, timm_name)
        except (FileNotFoundError, ValueError) as exc:
            problems.append(f"runs ({run!r}): {exc}")
    return problems


def _cam_layer_problems(cam_layers: dict, schema: dict) -> list[str]:
    archs = schema["properties"]["models"]["properties"]
    return [
        f"eval.cam_layers: unknown arch {arch!r}; known: {', '.join(archs)}"
        for arch in cam_layers
        if arch not in archs
    ]


def _predict_problems(predict: dict) -> list[str]:
    folder = predict.get("input_dir", "")
    if folder and not os.path.isdir(folder):
        return [f"predict.input_dir: folder {folder} does not exist"]
    return []


def _split_problems(split: dict) -> list[str]:
    problems = []
    fractions = split["fractions"]
    if abs(sum(fractions.values()) - 1) > 1e-6:
        text = ", ".join(f"{k} {v:g}" for k, v in fractions.items())
        problems.append(f"split.fractions must sum to 1, not {sum(fractions.values()):g} ({text})")
    folds = split.get("folds")
    if split["method"] == "patient_kfold" and folds is None:
        problems.append("split.method patient_kfold needs split.folds (the number of folds, >= 2)")
    elif split["method"] != "patient_kfold" and folds is not None:
        problems.append(
            f"split.folds ({folds}) is only for split.method patient_kfold, not "
            f"{split['method']!r}: remove it, or set the method to patient_kfold"
        )
    elif folds is not None and folds < 2:
        problems.append(f"split.folds must be at least 2, not {folds}")
    return problems


def fold_problems(config: dict, n_patients: int | None) -> list[str]:
    """Cross-validation needs at least one patient per fold."""
    folds = config["split"].get("folds")
    if folds is None or n_patients is None or folds <= n_patients:
        return []
    return [f"split.folds ({folds}) is more than the data set's {n_patients} patients"]


def _run_problems(entries: list[dict], schema: dict) -> list[str]:
    """Names unique and path-safe; known architectures; overrides the architecture accepts,
    with valid values (checked against that architecture's `models.<arch>` schema)."""
    from jsonschema import Draft202012Validator

    archs = schema["properties"]["models"]["properties"]
    problems, seen = [], set()
    for i, entry in enumerate(entries):
        name, arch = entry.get("name", ""), entry.get("arch")
        key = f"runs[{i}] ({name!r})"
        if not isinstance(name, str) or not RUN_NAME.fullmatch(name):
            problems.append(
                f"{key}: a run name must be letters, digits, '_' and '-' only (it names "
                "folders and Snakemake wildcards), not empty and without '/', spaces or dots"
            )
        elif name in seen:
            problems.append(f"{key}: the run name {name!r} is used twice; names must be unique")
        seen.add(name)
        if arch not in archs:
            problems.append(f"{key}: unknown arch {arch!r}; known: {', '.join(archs)}")
            continue
        sub = {**archs[arch], "$defs": schema["$defs"]}
        overrides = {k: v for k, v in entry.items() if k not in RUN_KEYS}
        accepted = list(sub["properties"])
        for k in overrides:
            if k not in accepted:
                problems.append(
                    f"{key}: {k!r} is not a setting of {arch} (it accepts: {', '.join(accepted)})"
                )
        for error in Draft202012Validator(sub).iter_errors(overrides):
            if error.validator != "additionalProperties":
                where = ".".join(str(p) for p in error.absolute_path)
                problems.append(f"{key}: {where}: {error.message}")
    return problems


def _compare_problems(pairs: list, names: list[str]) -> list[str]:
    problems, seen = [], set()
    for i, pair in enumerate(pairs):
        key = f"compare[{i}] {pair}"
        unknown = [r for r in pair if r not in names]
        if unknown:
            problems.append(f"{key}: unknown run {unknown[0]!r}; runs: {', '.join(names)}")
        elif pair[0] == pair[1]:
            problems.append(f"{key}: compares run {pair[0]!r} with itself")
        elif tuple(pair) in seen:
            problems.append(f"{key}: the pair is listed twice")
        seen.add(tuple(pair))
    return problems
