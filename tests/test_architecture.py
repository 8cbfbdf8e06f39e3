"""The code's shape: one architecture registry the schema agrees with, one data-set boundary,
evaluation independent of training, no private imports, short functions."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest
import torch
import yaml
from helpers import SCHEMA
from snakemake.utils import validate

from cxr14.layouts import LAYOUTS
from cxr14.layouts.nih import LABELS
from cxr14.models import ARCHITECTURES, build_model, cam_layer
from cxr14.settings import JOB_KEYS, POOL_KEYS, TRAIN_KEYS, default_config
from cxr14.tables import published_rows, split_kind
from cxr14.testing import hangguard
from cxr14.testing.workflow import REPO

SRC = REPO / "src" / "cxr14"
MAX_FUNCTION_LINES = 60


def _schema() -> dict:
    return yaml.safe_load(SCHEMA.read_text())


def test_schema_lists_exactly_the_registry():
    schema = _schema()["properties"]
    # The models sections are also the architectures a run may name (settings.config_problems).
    assert list(schema["models"]["properties"]) == list(ARCHITECTURES)


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_each_models_section_is_the_training_settings_plus_the_registry_settings(arch):
    props = _schema()["properties"]["models"]["properties"][arch]["properties"]
    # Besides them: how a run on several data sets pools them (only such runs carry it).
    assert set(props) - set(TRAIN_KEYS) - set(POOL_KEYS) == set(ARCHITECTURES[arch].settings)
    assert set(TRAIN_KEYS) <= set(props)
    # The registry names the settings; their defaults are the default configuration's.
    section = default_config()["models"][arch]
    assert set(ARCHITECTURES[arch].settings) <= set(section)
    validate({"models": {arch: section}}, str(SCHEMA))


def test_training_settings_are_declared_once():
    schema = _schema()
    train = schema["properties"]["train"]["properties"]
    assert set(train) == set(TRAIN_KEYS) | set(JOB_KEYS) | set(POOL_KEYS)
    assert set(schema["$defs"]) == {*TRAIN_KEYS, *POOL_KEYS, "seeds"}
    # Every training setting has its default under the default configuration's train.
    assert set(TRAIN_KEYS) | set(JOB_KEYS) | set(POOL_KEYS) <= set(default_config()["train"])


def test_no_hand_written_list_of_architectures_in_the_workflow():
    for path in [REPO / "Snakefile", *(REPO / "workflow" / "rules").glob("*.smk")]:
        text = path.read_text()
        assert not [a for a in ARCHITECTURES if a in text], path


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_cam_layer_is_a_spatial_map_of_the_model(arch):
    small = {"widths": [4, 8], "fc": 8, "weights": "none", "timm_name": "resnet10t"}
    model = build_model(arch, 3, **small, input_size=64).eval()
    layer = cam_layer(arch, model)
    assert any(layer is m for m in model.modules())
    seen = {}
    handle = layer.register_forward_hook(lambda m, i, o: seen.update(shape=o.shape))
    with torch.no_grad():
        assert model(torch.zeros(2, 1, 64, 64)).shape == (2, 3)
    handle.remove()
    if len(seen["shape"]) == 3:  # a transformer's tokens: the class token and a 4x4 patch grid
        assert seen["shape"][1] == 1 + (64 // 16) ** 2
    else:
        assert len(seen["shape"]) == 4 and seen["shape"][-1] > 1


def test_a_configured_cam_layer_is_found_by_its_path_and_a_wrong_one_named():
    model = build_model("densenet121", 3, weights="none").eval()
    seen = {}
    layer = cam_layer("densenet121", model, "features.denseblock3")
    handle = layer.register_forward_hook(lambda m, i, o: seen.update(shape=o.shape))
    with torch.no_grad():
        model(torch.zeros(1, 1, 64, 64))
    handle.remove()
    # At a 64x64 input the last block gives 2x2; the third block 4x4.
    assert seen["shape"][-2:] == (4, 4)
    with pytest.raises(ValueError, match="densenet121 has no module 'features.nope'"):
        cam_layer("densenet121", model, "features.nope")
    frozen = build_model("resnet18", 3, weights="none", freeze="backbone")  # wrapped
    assert cam_layer("resnet18", frozen, "layer3") is frozen.net.layer3


def test_layouts():
    cfg = {
        "data": {"nih_dir": "/d", "metadata_csv": "Data_Entry_2017.csv", "views": ["PA", "AP"]},
        "synthetic": {"image_size": 512},
        "split": {"method": "official"},
    }
    nih, synthetic = LAYOUTS["nih"], LAYOUTS["synthetic"]
    assert nih.labels == synthetic.labels == LABELS
    assert nih.box_space(cfg) == 1024 and synthetic.box_space(cfg) == 512
    assert nih.metadata_file(cfg) == "/d/Data_Entry_2017.csv"
    assert "not NIH" in synthetic.display_label(cfg) and not synthetic.comparable_to_published
    assert nih.display_label(cfg) == "NIH ChestX-ray14, PA and AP views, official split"
    pa = {**cfg, "data": {**cfg["data"], "views": ["PA"]}}
    assert nih.display_label(pa) == "NIH ChestX-ray14, PA view only, official split"
    assert synthetic.display_label(pa).endswith("PA view only")
    published = nih.published_auroc().set_index("model")
    assert list(published.columns[5:]) == list(LABELS)
    assert published.loc["CheXNet (Rajpurkar et al. 2017)", list(LABELS)].mean() == (
        pytest.approx(0.841, abs=5e-4)
    )
    assert published["source"].str.contains("arXiv").all()
    assert published["source"].str.contains("Table").all()
    # Wang et al.'s ChestX-ray14 values on NIH's official split (Table 17 of the later
    # version), not the earlier values CheXNet's table quotes.
    wang = published.loc["Wang et al. 2017 (ResNet-50)"]
    assert (wang["split_kind"], wang["Atelectasis"], wang["Hernia"]) == ("official", 0.7003, 0.8717)
    assert wang[list(LABELS)].mean() == pytest.approx(0.7451, abs=5e-5)
    enum = _schema()["properties"]["data"]["properties"]["source"]["enum"]
    assert set(enum) == set(LAYOUTS)


# ------------------------------------------------------------------------------ import rules


def _modules() -> dict[str, ast.Module]:
    out = {}
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC.parent).with_suffix("")
        name = ".".join(p for p in rel.parts if p != "__init__")
        out[name] = ast.parse(path.read_text(), str(path))
    return out


def _imports(tree: ast.Module) -> list[tuple[str, list[str]]]:
    """(module, imported names) of every import of a cxr14 module, at any depth."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("cxr14"):
            found.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names if a.name.startswith("cxr14")]
    return found


def _reachable(start: str, modules: dict) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name in seen or name not in modules:
            continue
        seen.add(name)
        for module, names in _imports(modules[name]):
            todo.append(module)
            todo += [f"{module}.{n}" for n in names]  # `from cxr14 import figures`
    return seen


@pytest.mark.parametrize(
    "scoring",
    ["cxr14.evaluate", "cxr14.localization", "cxr14.inference", "cxr14.report", "cxr14.figures"],
)
def test_scoring_never_imports_the_training_module(scoring):
    assert "cxr14.train" not in _reachable(scoring, _modules())


def test_no_private_names_are_imported_across_modules():
    bad = [
        (name, module, n)
        for name, tree in _modules().items()
        for module, names in _imports(tree)
        for n in names
        if n.startswith("_") and not n.startswith("__")
    ]
    assert not bad


def _top_level_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
    return names


def _changes_sys_path(path: Path) -> bool:
    """Whether the file calls sys.path.insert/append (how one tree would reach the other)."""
    return any(
        isinstance(node, ast.Attribute)
        and node.attr in ("insert", "append")
        and ast.unparse(node.value) == "sys.path"
        for node in ast.walk(ast.parse(path.read_text()))
    )


def test_tests_and_benchmarks_import_neither_each_other_nor_does_the_pipeline_import_either():
    """What both use lives in cxr14.testing; the pipeline itself never imports cxr14.testing."""
    tests, bench = REPO / "tests", REPO / "bench"
    test_modules = {p.stem for p in tests.rglob("*.py")}
    bench_modules = {p.stem for p in bench.glob("*.py")}
    for path in tests.rglob("*.py"):
        assert not _top_level_imports(path) & bench_modules, path
        assert not _changes_sys_path(path), path
    for path in bench.glob("*.py"):
        assert not _top_level_imports(path) & test_modules, path
        assert not _changes_sys_path(path), path
    pipeline = {n for n, tree in _modules().items() if not n.startswith("cxr14.testing")}
    users = {
        n for n in pipeline for m, _ in _imports(_modules()[n]) if m.startswith("cxr14.testing")
    }
    assert not users


# Stage modules: each writes one stage's outputs (drawing and table formatting are figures and
# tables, which any stage may call). Between stages only readers of the files another stage
# writes pass (data flows one way).
STAGES = ("evaluate", "expert", "subgroups", "compare", "localization", "bundle", "predict")
STAGES += ("report",)
READERS = {"bundle_scorer", "load_bundle"}


def test_statistics_have_one_home():
    """Every statistic is defined in cxr14.metrics only, and stage modules take nothing from
    another stage module but readers."""
    modules = _modules()
    home = {n.name for n in modules["cxr14.metrics"].body if isinstance(n, ast.FunctionDef)}
    for name, tree in modules.items():
        defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert name == "cxr14.metrics" or not defined & home, (name, defined & home)
    stages = {f"cxr14.{s}" for s in STAGES}
    taken = {
        (name, module, n)
        for name in stages
        for module, names in _imports(modules[name])
        for n in names
        if module in stages and n not in READERS
    }
    assert not taken


def _fresh_imports(*modules: str) -> set[str]:
    """The modules a fresh interpreter has loaded after importing ``modules``."""
    code = f"import sys, {', '.join(modules)}; print(' '.join(sorted(sys.modules)))"
    proc = hangguard.run([sys.executable, "-c", code], guard=hangguard.COMMAND, check=True)
    return set(proc.stdout.split())


def test_predict_imports_none_of_the_workflows_figures_nor_the_synthetic_generator():
    """`cxr14 predict` draws its own overlays and reads no data set's layout: in a fresh
    interpreter, importing it loads no cxr14.figures (nor the tables, reports or training of
    the workflow) and no layout (the synthetic generator is one)."""
    loaded = _fresh_imports("cxr14.cli", "cxr14.predict")
    assert "cxr14.predict" in loaded
    assert not loaded & {"cxr14.figures", "cxr14.tables", "cxr14.report", "cxr14.train"}
    assert not {m for m in loaded if m.startswith("cxr14.layouts")}


def test_figures_only_draw():
    """Figures take data files and write PNGs: importing cxr14.figures (or the summary's
    cxr14.report) loads no model, checkpoint, scoring or layout code, and no torch."""
    for module in ("cxr14.figures", "cxr14.report"):
        loaded = _fresh_imports(module)
        assert module in loaded
        code = {"cxr14.models", "cxr14.checkpoint", "cxr14.inference", "cxr14.localization"}
        assert not loaded & ({"torch"} | code), module
        if module == "cxr14.figures":
            assert not {m for m in loaded if m.startswith("cxr14.layouts")}


def test_only_layouts_know_the_nih_labels():
    """Downstream stages read the label list from labels.csv, the store or the checkpoint."""
    users = {
        name
        for name, tree in _modules().items()
        for module, names in _imports(tree)
        if module.startswith("cxr14.layouts.nih") and "LABELS" in names
    }
    assert users <= {"cxr14.layouts.synthetic"}


# A data set's names; only its layout (and the synthetic writer of its format) may say them.
DATA_SET_NAMES = re.compile(r"NIH|nih|ChestX-ray|CheXpert|chexpert|MIMIC|mimic")
WRITERS = {lay.writer for lay in LAYOUTS.values() if lay.generated}  # a format's own writer


def _code_words(tree: ast.AST):
    """Identifiers, imported modules and string literals of a module, docstrings left out."""
    docs = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            yield node.lineno, node.value
        elif isinstance(node, ast.Name):
            yield node.lineno, node.id
        elif isinstance(node, ast.Attribute):
            yield node.lineno, node.attr
        elif isinstance(node, ast.ImportFrom):
            yield node.lineno, node.module or ""
        elif isinstance(node, ast.alias):
            yield 0, node.name


def test_no_module_outside_layouts_names_a_data_set():
    """Every data-set word in a table, caption, card or error comes from the layout."""
    found = [
        f"{name}:{line} {text!r}"
        for name, tree in _modules().items()
        if not name.startswith("cxr14.layouts") and name not in WRITERS
        for line, text in _code_words(tree)
        if text and DATA_SET_NAMES.search(text)
    ]
    assert not found
    texts = [*(REPO / "workflow" / "report").rglob("*.rst"), *(REPO / "workflow").rglob("*.smk")]
    said = [str(p) for p in texts if re.search(r"NIH|ChestX-ray|CheXpert|MIMIC", p.read_text())]
    assert not said


def test_the_schema_knows_every_layout():
    schema = yaml.safe_load(SCHEMA.read_text())
    assert set(schema["properties"]["data"]["properties"]["source"]["enum"]) == set(LAYOUTS)


def test_no_function_is_longer_than_the_limit():
    long = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{Path(path).name}:{node.lineno} {node.name} ({n} lines)")
    assert not long


def test_the_formatter_owns_formatting():
    skips = [
        str(p.relative_to(REPO))
        for p in [*REPO.glob("src/**/*.py"), *REPO.glob("tests/*.py"), *REPO.glob("bench/*.py")]
        if "fmt: " + "skip" in p.read_text()
    ]
    assert not skips


@pytest.mark.parametrize(
    ("method", "caveat", "views", "skipped", "wang", "chexnet"),
    [
        ("official", "", ["PA", "AP"], 0, "comparable: same test images", "not comparable: pub"),
        ("patient_random", "", ["PA", "AP"], 0, "not comparable: published on NIH's", "same kind"),
        ("patient_kfold", "synthetic", ["PA", "AP"], 0, "not comparable: synth", "not comparable"),
        # A PA-only run, or one with images skipped, does not score the official test list.
        (
            "official",
            "",
            ["PA"],
            0,
            "not comparable: NIH's official test list, but this run leaves out the AP view",
            "not comparable: published on a random",
        ),
        (
            "official",
            "",
            ["PA", "AP"],
            3,
            "not comparable: NIH's official test list, but 3 image(s) skipped",
            "not comparable",
        ),
    ],
)
def test_published_rows_say_whether_they_are_comparable(
    method, caveat, views, skipped, wang, chexnet
):
    nih = LAYOUTS["nih"]
    published = nih.published_auroc()
    coverage = {"layout_views": nih.views, "run_views": views, "n_unreadable": skipped}
    rows = published_rows(
        published, list(LABELS), "NIH", split_kind(method), caveat, nih.wording, coverage
    )
    said = {r["model"]: r["comparable"] for r in rows}
    assert said["Wang et al. 2017 (ResNet-50)"].startswith(wang)
    assert said["CheXNet (Rajpurkar et al. 2017)"].startswith(chexnet)
    assert all("arXiv" in r["dataset"] and r["test_set"] for r in rows)


def test_captions_use_only_their_rules_params():
    """A caption's `snakemake.params.X` that its rule lacks would render as nothing (Jinja's
    undefined), silently."""
    captions = REPO / "workflow" / "report" / "captions"
    rule = re.compile(r"(?ms)^( *)rule (\w+):\n(.*?)(?=^ *rule \w+:|\Z)")
    checked = set()
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        for indent, rule_name, body in rule.findall(smk.read_text()):
            params = re.search(
                rf"(?m)^{indent}    params:\n((?:{indent}        .*\n|\s*\n)*)", body
            )
            have = (
                set(re.findall(rf"(?m)^{indent}        (\w+)=", params.group(1)))
                if params
                else set()
            )
            for name in re.findall(r'caption="\.\./report/captions/(\w+\.rst)"', body):
                used = set(re.findall(r"snakemake\.params\.(\w+)", (captions / name).read_text()))
                assert used <= have, (rule_name, name, used - have)
                checked.add(rule_name)
    # Rules planned only where the layout has boxes are checked too.
    assert {"localize_findings", "plot_cams", "summarize_models"} <= checked


def test_scripts_use_only_their_rules_params_and_io():
    """A script's `snakemake.params.X` (or input/output) that its rule lacks fails only when the
    job runs. Names given by unpack() or ** in input/output are known only at run time; params
    named that way are read with `.get()`."""
    rule = re.compile(r"(?ms)^( *)rule (\w+):\n(.*?)(?=^ *rule \w+:|^\S|\Z)")
    checked = set()
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        for indent, rule_name, body in rule.findall(smk.read_text()):
            script = re.search(r'"\.\./scripts/(\w+\.py)"', body)
            if not script:
                continue
            code = (REPO / "workflow" / "scripts" / script.group(1)).read_text()
            for section in ("params", "input", "output"):
                block = re.search(
                    rf"(?m)^{indent}    {section}:\n((?:{indent}        .*\n|\s*\n)*)", body
                )
                text = block.group(1) if block else ""
                have = set(re.findall(rf"(?m)^{indent}        (\w+)=", text))
                used = set(re.findall(rf"snakemake\.{section}\.(\w+)", code)) - {"get", "items"}
                if section == "params" or not ("**" in text or "unpack(" in text):
                    assert used <= have, (rule_name, section, used - have)
            checked.add(rule_name)
    assert {"evaluate_model", "export_model", "parse_metadata", "aggregate_run"} <= checked


# Jobs that draw or tabulate: they start without the heavy libraries (issue: ~10 s of imports
# per small job). The scripts of every plot_* rule, and these:
TABLE_SCRIPTS = ("aggregate_run", "collect_comparisons", "summarize_models", "count_classes")
HEAVY = {"torch", "torchvision", "sklearn", "scipy"}


def test_plot_and_table_jobs_import_no_torch_scikit_learn_or_scipy():
    scripts = sorted((REPO / "workflow" / "scripts").glob("*.py"))
    light = [p for p in scripts if p.stem.startswith("plot_") or p.stem in TABLE_SCRIPTS]
    assert len(light) >= 12
    for script in light:
        modules = [m for m, _ in _imports(ast.parse(script.read_text()))]
        assert modules, script
        loaded = _fresh_imports(*modules)
        assert not loaded & HEAVY, (script.name, sorted(loaded & HEAVY))


def test_torchvision_and_dynamo_only_where_needed():
    """Training and scoring a network of the reference study's own import neither
    torchvision nor torch._dynamo (2-3 s per job); a torchvision architecture imports them."""
    code = (
        "import sys, cxr14.train, cxr14.evaluate, cxr14.localization, cxr14.bundle, "
        "cxr14.predict; from cxr14.models import build_model; "
        "build_model('vgg_like', 3, widths=[4], fc=4); build_model('simple_cnn', 3); "
        "print('torchvision' in sys.modules, 'torch._dynamo' in sys.modules); "
        "build_model('resnet18', 3, weights='none'); print('torchvision' in sys.modules)"
    )
    proc = hangguard.run([sys.executable, "-c", code], guard=hangguard.COMMAND, check=True)
    assert proc.stdout.split() == ["False", "False", "True"]


def test_layouts_import_nothing_above_them():
    """Data-set layouts build on the generic image table and errors only: no import cycle
    (metadata imports no layout), and the synthetic images' renderer (cxr14.synthetic, PIL) is
    outside them."""
    modules = _modules()
    below = {"cxr14.errors", "cxr14.metadata"}
    for name, tree in modules.items():
        if name.startswith("cxr14.layouts"):
            used = {m for m, _ in _imports(tree)}
            assert {m for m in used if not m.startswith("cxr14.layouts")} <= below, name
            packages = {
                (n.module or "") if isinstance(n, ast.ImportFrom) else a.name
                for n in ast.walk(tree)
                if isinstance(n, ast.Import | ast.ImportFrom)
                for a in n.names
            }
            assert not {p for p in packages if p.split(".")[0] == "PIL"}, name
    for name in below:
        assert not [m for m, _ in _imports(modules[name]) if m.startswith("cxr14.layouts")], name
