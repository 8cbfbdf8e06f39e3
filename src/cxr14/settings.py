"""A training's settings from the workflow configuration (no torch: the workflow imports it).

The defaults live in ``config/config.yaml`` and the schema (``workflow/schemas``); model
settings an architecture's section leaves out take the registry's defaults at training time.
"""

from __future__ import annotations

import copy
import os

# Keys of the `train` section that configure the jobs, not the training itself.
JOB_KEYS = ("archs", "gpus", "threads")
# Settings every training needs (the schema gives each a default under `train`).
TRAIN_KEYS = (
    "device",
    "seed",
    "sampling",
    "loss",
    "augment",
    "input_size",
    "batch_size",
    "eval_batch_size",
    "epochs",
    "lr",
    "milestones",
    "gamma",
    "amp",
    "channels_last",
)


def train_settings(config: dict, arch: str) -> dict:
    """The settings of one architecture's training: ``train`` + ``models.<arch>`` on top.

    Only these go into the job's params, so changing one architecture's hyperparameter reruns
    only that architecture's training (and what depends on it).
    """
    shared = {k: v for k, v in config["train"].items() if k not in JOB_KEYS}
    return {"arch": arch, **shared, **config["models"].get(arch, {})}


def check_complete(settings: dict) -> None:
    missing = [k for k in ("arch", *TRAIN_KEYS) if k not in settings]
    if missing:
        raise ValueError(
            f"training settings lack {', '.join(missing)} (the workflow fills them from "
            "config/config.yaml and the schema's defaults)"
        )


def with_defaults(config: dict, schema: str | os.PathLike) -> dict:
    """A copy of ``config`` validated against the workflow's ``schema`` with its defaults
    filled in, as the Snakefile does (for programs that train outside the workflow; needs
    snakemake)."""
    from snakemake.utils import validate

    config = copy.deepcopy(config)
    validate(config, str(schema))
    return config


def config_problems(config: dict) -> list[str]:
    """What the schema cannot say about a configuration, each naming its key."""
    problems = []
    fractions = config["split"]["fractions"]
    if abs(sum(fractions.values()) - 1) > 1e-6:
        text = ", ".join(f"{k} {v:g}" for k, v in fractions.items())
        problems.append(f"split.fractions must sum to 1, not {sum(fractions.values()):g} ({text})")
    return problems
