"""The generated JSON Schemas, spec templates and manifest: valid, strict, and in step with the trainer."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from generators.outputs import fill_placeholders
from generators.requirements import ALTERNATIVES, CONDITIONAL, placeholder_keys
from generators.spec_template import DEPLOY_OVERLAYS
from optical_inspection.cli import main as trainer_main
from optical_inspection.config import ACTION_SECTIONS, ACTIONS, SHARED_SECTIONS, ExperimentConfig
from optical_inspection.config.walk import KeyIndex, unwrap_optional
from optical_inspection.errors import SpecError
from optical_inspection.spec import get_dotted, set_dotted, validate_dict

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = "/data/example/path"
TEMPLATES = sorted((REPO / "references").glob("spec_template_*.yaml"))


def _strict_json(path: Path) -> Any:
    def refuse(token: str) -> None:
        raise ValueError(f"{path}: non-standard JSON token {token}")
    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


def _schema(action: str) -> dict[str, Any]:
    return _strict_json(REPO / "schemas" / f"{action}.schema.json")


def _action_of(template: Path) -> str:
    return template.stem.removeprefix("spec_template_").removeprefix("deploy_")


def _filled(template: Path) -> dict[str, Any]:
    return fill_placeholders(yaml.safe_load(template.read_text(encoding="utf-8")), EXAMPLE)


def _schema_errors(data: dict[str, Any], action: str) -> list[str]:
    validator = jsonschema.Draft202012Validator(_schema(action))
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(data)]


@pytest.mark.parametrize("action", ACTIONS)
def test_schema_is_strict_json_and_valid_draft_2020_12(action):
    schema = _schema(action)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["x-schema"]["action"] == action and schema["x-schema"]["version"] == 1
    assert schema["type"] == "object" and schema["additionalProperties"] is False


@pytest.mark.parametrize("action", ACTIONS)
def test_schema_holds_only_the_actions_sections(action):
    assert set(_schema(action)["properties"]) == set(SHARED_SECTIONS + ACTION_SECTIONS[action])


def _walk(node: dict[str, Any], path: str = ""):
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from _walk(child, f"{path}.{name}" if path else name)
    for keyword in ("items", "additionalProperties"):
        if isinstance(node.get(keyword), dict):
            yield from _walk(node[keyword], f"{path}[{keyword}]")


@pytest.mark.parametrize("action", ACTIONS)
def test_every_node_uses_standard_types_and_finite_bounds(action):
    standard = {"string", "number", "integer", "boolean", "object", "array", "null"}
    for path, node in _walk(_schema(action)):
        types = node.get("type", [])
        for name in types if isinstance(types, list) else [types]:
            assert name in standard, f"{path}: type {name!r}"
        if node.get("type") == "object" and "properties" in node:
            assert node["additionalProperties"] is False, path
        for keyword in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            if keyword in node:
                assert isinstance(node[keyword], (int, float)) and abs(node[keyword]) < 1e300, path


def test_automl_extension_keys_only_where_automl_runs():
    train = _schema("train")
    index = KeyIndex(ExperimentConfig).keys
    searched = sorted(p for p, k in index.items() if k.automl and k.automl["enabled"])
    on_request = sorted(p for p, k in index.items() if k.automl and not k.automl["enabled"])
    assert train["automl_default_parameters"] == searched and searched
    assert train["automl_disabled_parameters"] == on_request
    assert train["popular"]["train"]["num_epochs"] == index["train.num_epochs"].default()
    lr = train["properties"]["train"]["properties"]["optim"]["properties"]["lr"]
    assert lr["x-automl"]["enabled"] is True and lr["x-automl"]["log"] is True
    for action in ACTIONS:
        if action == "train":
            continue
        schema = _schema(action)
        assert schema["automl_default_parameters"] == [] and schema["automl_disabled_parameters"] == []
        carriers = [path for path, node in _walk(schema) if "x-automl" in node]
        assert carriers == [], f"{action} schema carries AutoML metadata"


def test_manifest_lists_every_action_and_existing_files():
    manifest = _strict_json(REPO / "schemas" / "manifest.json")
    skill_info = yaml.safe_load((REPO / "references" / "skill_info.yaml").read_text())
    assert set(manifest["actions"]) == set(ACTIONS)
    for action, entry in manifest["actions"].items():
        for key in ("schema", "spec_template", "deploy_spec_template"):
            if entry[key] is not None:
                assert (REPO / entry[key]).is_file(), entry[key]
        assert entry["automl"] == skill_info["actions"][action]["automl"], action
        assert entry["sections"] == list(SHARED_SECTIONS + ACTION_SECTIONS[action])
    deploy = {a for a, e in manifest["actions"].items() if e["deploy_spec_template"]}
    assert deploy == {"gen_trt_engine", "evaluate", "inference"}


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.stem)
def test_template_holds_runtime_defaults_and_placeholders(template):
    action = _action_of(template)
    data = yaml.safe_load(template.read_text(encoding="utf-8"))
    assert set(data) == set(SHARED_SECTIONS + ACTION_SECTIONS[action])
    placeholders = {p for p in _leaf_paths(data) if get_dotted(data, p) == "???"}
    if "deploy_" not in template.stem:
        assert placeholders == set(placeholder_keys(action))
        for key in KeyIndex(ExperimentConfig):
            if key.section is None and key.path.split(".")[0] in data and key.path not in placeholders:
                assert get_dotted(data, key.path) == key.default(), f"{template.name}: {key.path}"
    assert placeholders, f"{template.name} asks for nothing"


@pytest.mark.parametrize("action", sorted(DEPLOY_OVERLAYS))
def test_deploy_template_differs_only_in_its_overlay(action):
    plain = yaml.safe_load((REPO / f"references/spec_template_{action}.yaml").read_text(encoding="utf-8"))
    deploy = yaml.safe_load((REPO / f"references/spec_template_deploy_{action}.yaml").read_text(encoding="utf-8"))
    paths = _leaf_paths(plain)
    assert paths == _leaf_paths(deploy)
    differ = {p: get_dotted(deploy, p) for p in paths if get_dotted(plain, p) != get_dotted(deploy, p)}
    assert differ == DEPLOY_OVERLAYS[action]


def _leaf_paths(data: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for name, value in data.items():
        if isinstance(value, dict) and value:
            out += _leaf_paths(value, f"{prefix}{name}.")
        else:
            out.append(prefix + name)
    return out


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.stem)
def test_filled_template_validates_and_unfilled_does_not(template):
    action = _action_of(template)
    assert _schema_errors(_filled(template), action) == []
    raw = yaml.safe_load(template.read_text(encoding="utf-8"))
    errors = _schema_errors(raw, action)
    assert errors, "a template with open ??? must not validate"
    open_keys = [p for p in _leaf_paths(raw) if get_dotted(raw, p) == "???"]
    for error in errors:  # each names an open key, or the section whose alternatives are all open
        key = error.split(":")[0]
        assert any(k == key or k.startswith(key + ".") for k in open_keys), error


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.stem)
def test_filled_template_loads_in_the_trainers_dry_run(template, tmp_path, capsys):
    action = _action_of(template)
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(_filled(template), sort_keys=False))
    assert trainer_main([action, "-e", str(spec), "--dry-run"]) == 0, capsys.readouterr().err


def test_dry_run_of_the_console_script(tmp_path):
    spec = tmp_path / "train.yaml"
    spec.write_text(yaml.safe_dump(_filled(REPO / "references/spec_template_train.yaml"), sort_keys=False))
    script = Path(sys.executable).with_name("optical_inspection")
    proc = subprocess.run([str(script), "train", "-e", str(spec), "--dry-run"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert EXAMPLE in proc.stdout


def _spec_ok(data: dict[str, Any], action: str) -> bool:
    try:
        validate_dict(json.loads(json.dumps(data)), action)
    except SpecError:
        return False
    return True


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.stem)
def test_schema_requirements_agree_with_the_trainer(template):
    """Clearing any optional key of a filled template: the schema rejects it exactly when the trainer does."""
    action = _action_of(template)
    filled = _filled(template)
    index = KeyIndex(ExperimentConfig).keys
    for path in _leaf_paths(filled):
        spec = index[path]
        if get_dotted(filled, path) is None or not unwrap_optional(spec.annotation)[1]:
            continue
        data = json.loads(json.dumps(filled))
        set_dotted(data, path, None)
        assert (_schema_errors(data, action) == []) == _spec_ok(data, action), f"{template.name}: {path}=null"


@pytest.mark.parametrize("key, alternatives", sorted(ALTERNATIVES.items()))
def test_model_alternatives_agree_with_the_trainer(key, alternatives):
    action = key.split(".")[0]
    data = _filled(REPO / f"references/spec_template_{action}.yaml")
    set_dotted(data, key, None)
    assert not _spec_ok(data, action) and _schema_errors(data, action)
    for other in alternatives:
        candidate = json.loads(json.dumps(data))
        set_dotted(candidate, other, "/models/oi_model.bin")
        assert _spec_ok(candidate, action) and _schema_errors(candidate, action) == [], other


@pytest.mark.parametrize("action", sorted(CONDITIONAL))
def test_conditional_requirements_agree_with_the_trainer(action):
    selector, table = CONDITIONAL[action]
    base = _filled(REPO / f"references/spec_template_{action}.yaml")
    for value, keys in table.items():
        data = json.loads(json.dumps(base))
        set_dotted(data, selector, value)
        for path in {k for ks in table.values() for k in ks}:
            set_dotted(data, path, None)
        assert not _spec_ok(data, action) and _schema_errors(data, action), value
        for path in keys:
            set_dotted(data, path, EXAMPLE)
        assert _spec_ok(data, action) and _schema_errors(data, action) == [], value


def test_unknown_key_and_wrong_type_are_rejected():
    data = _filled(REPO / "references/spec_template_train.yaml")
    data["train"]["num_epoch"] = 3
    data["dataset"]["batch_size"] = "16"
    data["train"]["optim"]["lr"] = 0
    errors = _schema_errors(data, "train")
    assert any(e.startswith("train:") and "num_epoch" in e for e in errors)
    assert any(e.startswith("dataset.batch_size:") for e in errors)
    assert any(e.startswith("train.optim.lr:") for e in errors)
    evaluate = _filled(REPO / "references/spec_template_evaluate.yaml")
    evaluate["train"] = {}
    assert any("train" in e for e in _schema_errors(evaluate, "evaluate"))
