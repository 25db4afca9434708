"""The generator: torch-free, byte-stable, `--check` catches drift, a changed default changes exactly its lines."""
from __future__ import annotations

import difflib
import json
import math
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Literal, Optional

import pytest

from generators import GeneratorError
from generators.__main__ import main
from generators.outputs import OWNED_PATTERNS, dump_json, find_drift, render_all
from generators.skill_docs import fill_blocks
from optical_inspection.config import ACTION_SECTIONS, AutoML, spec_field
from optical_inspection.config.fields import Float, Int, Str, section
from optical_inspection.config.key_schema import KeySchemaError, object_schema, type_schema
from optical_inspection.config.walk import iter_keys

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def generated() -> dict[str, str]:
    return render_all(REPO)


def test_generator_never_imports_torch():
    code = ("import sys; from pathlib import Path; from generators.outputs import render_all; "
            "render_all(Path('.')); import generators.__main__; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'lightning', 'pytorch_lightning')); "
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_committed_outputs_are_up_to_date_via_cli():
    proc = subprocess.run([sys.executable, "-m", "generators", "--check"], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, f"generated files are stale; run `make generate`\n{proc.stderr}"
    assert "up to date" in proc.stdout


def test_output_is_byte_stable(generated):
    again = render_all(REPO)
    assert again == generated
    for rel, text in generated.items():
        assert text.endswith("\n") and not text.endswith("\n\n"), rel
        if rel.endswith(".json"):
            assert text == dump_json(json.loads(text)), f"{rel} is not in canonical form"


def test_generated_set_covers_every_action_and_the_skill_docs(generated):
    for action in ACTION_SECTIONS:
        assert f"schemas/{action}.schema.json" in generated
        assert f"references/spec_template_{action}.yaml" in generated
    for action in ("gen_trt_engine", "evaluate", "inference"):
        assert f"references/spec_template_deploy_{action}.yaml" in generated
    assert "schemas/manifest.json" in generated
    assert any(rel.startswith("skills/") for rel in generated)


def test_strict_json_refuses_nan_and_infinity():
    with pytest.raises(ValueError):
        dump_json({"maximum": math.inf})
    with pytest.raises(ValueError):
        dump_json({"default": math.nan})


def _copy_tree(root: Path, generated: dict[str, str]) -> None:
    for rel in [*generated, "references/skill_info.yaml"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, root / rel)


def _hand_edit(text: str, rel: str) -> str:
    """Change one character of a line the generator owns (inside a generated block for skill docs)."""
    lines = text.splitlines(keepends=True)
    if rel.startswith("skills/"):
        start = next(i for i, line in enumerate(lines) if line.startswith("<!-- BEGIN GENERATED:"))
        index = start + 1
    else:
        index = len(lines) // 2
    lines[index] = lines[index].rstrip("\n") + " \n"
    return "".join(lines)


def test_check_names_a_hand_edit_of_every_generated_file(tmp_path, generated):
    _copy_tree(tmp_path, generated)
    assert find_drift(tmp_path, generated) == []
    for rel in generated:
        path = tmp_path / rel
        original = path.read_text(encoding="utf-8")
        path.write_text(_hand_edit(original, rel), encoding="utf-8")
        drift = find_drift(tmp_path, render_all(tmp_path) if rel.startswith("skills/") else generated)
        assert [(d.path, d.reason) for d in drift] == [(rel, "differs")], rel
        path.write_text(original, encoding="utf-8")


def test_check_cli_exit_code_and_message(tmp_path, generated, capsys):
    _copy_tree(tmp_path, generated)
    assert main(["--check", "--root", str(tmp_path)]) == 0
    target = tmp_path / "references/spec_template_train.yaml"
    target.write_text(target.read_text().replace("num_epochs: 10", "num_epochs: 11"))
    (tmp_path / "schemas/old_action.schema.json").write_text("{}\n")
    (tmp_path / "schemas/manifest.json").unlink()
    assert main(["--check", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "stale: references/spec_template_train.yaml (differs)" in err
    assert "stale: schemas/old_action.schema.json (unexpected)" in err
    assert "stale: schemas/manifest.json (missing)" in err
    # writing repairs everything (and removes the orphan), after which --check passes
    assert main(["--root", str(tmp_path)]) == 0
    assert not (tmp_path / "schemas/old_action.schema.json").exists()
    assert main(["--check", "--root", str(tmp_path)]) == 0


def test_prose_outside_generated_blocks_is_kept(tmp_path, generated):
    _copy_tree(tmp_path, generated)
    doc = tmp_path / "skills/optical-inspection/SKILL.md"
    doc.write_text(doc.read_text(encoding="utf-8") + "\nA hand-written closing note.\n", encoding="utf-8")
    files = render_all(tmp_path)
    assert files["skills/optical-inspection/SKILL.md"].endswith("A hand-written closing note.\n")
    assert find_drift(tmp_path, files) == []


def test_emptied_block_is_refilled(tmp_path, generated):
    _copy_tree(tmp_path, generated)
    doc = tmp_path / "skills/optical-inspection/SKILL.md"
    text = doc.read_text(encoding="utf-8")
    start = text.index("<!-- BEGIN GENERATED: shorthand_keys -->\n") + len("<!-- BEGIN GENERATED: shorthand_keys -->\n")
    end = text.index("<!-- END GENERATED: shorthand_keys -->")
    doc.write_text(text[:start] + text[end:], encoding="utf-8")
    assert main(["--root", str(tmp_path)]) == 0
    assert doc.read_text(encoding="utf-8") == text


@pytest.mark.parametrize("text, message", [
    ("<!-- BEGIN GENERATED: no_such_table -->\n<!-- END GENERATED: no_such_table -->\n",
     "doc.md:1: unknown generated block 'no_such_table'"),
    ("<!-- BEGIN GENERATED: actions -->\n", "doc.md:1: block 'actions' is never closed"),
    ("<!-- END GENERATED: actions -->\n", "doc.md:1: END 'actions' does not close any open block"),
    ("<!-- BEGIN GENERATED: actions -->\n<!-- BEGIN GENERATED: actions -->\n",
     "doc.md:2: BEGIN 'actions' inside block 'actions'"),
    ("<!-- BEGIN GENERATED: Actions  -->\n", "doc.md:1: malformed marker"),
])
def test_bad_markers_name_file_and_line(text, message):
    with pytest.raises(GeneratorError, match=message.replace("(", r"\(")):
        fill_blocks("doc.md", text, {})


def test_bad_marker_in_a_skill_doc_fails_the_cli_without_writing(tmp_path, generated, capsys):
    _copy_tree(tmp_path, generated)
    schema = tmp_path / "schemas/train.schema.json"
    schema.write_text("{}\n")
    doc = tmp_path / "skills/optical-inspection/SKILL.md"
    doc.write_text(doc.read_text(encoding="utf-8") + "<!-- BEGIN GENERATED: nope -->\n<!-- END GENERATED: nope -->\n")
    assert main(["--root", str(tmp_path)]) == 2
    assert "unknown generated block 'nope'" in capsys.readouterr().err
    assert schema.read_text() == "{}\n", "nothing may be written when generation fails"


def test_type_mapping_of_an_in_memory_section():
    @section
    class Probe:
        count: Int = spec_field(3, description="A count.", ge=1, lt=10, popular=True)
        ratio: Optional[Float] = spec_field(None, description="A ratio.", gt=0.0, le=1.0,
                                            automl=AutoML(enabled=True, low=0.1, high=0.9, log=True))
        mode: Literal["a", "b"] = spec_field("a", description="A mode.", tao_default="b")
        maybe_mode: Optional[Literal["x", "y"]] = spec_field(None, description="Optional mode.")
        names: list[Str] = spec_field(description="Names.", factory=lambda: ["n"])
        weights: Optional[dict[Str, Int]] = spec_field(None, description="Weights.")
        path: Optional[Str] = spec_field(None, description="A path.", required_for=("train",))

    schema = object_schema(iter_keys(Probe), with_extras=True, with_automl=True)
    props = schema["properties"]
    assert schema["additionalProperties"] is False
    assert props["count"] == {"type": "integer", "minimum": 1, "exclusiveMaximum": 10, "default": 3,
                              "description": "A count.", "x-popular": True}
    assert props["ratio"]["type"] == ["null", "number"]
    assert (props["ratio"]["exclusiveMinimum"], props["ratio"]["maximum"]) == (0.0, 1.0)
    assert props["ratio"]["x-automl"] == {"enabled": True, "low": 0.1, "high": 0.9, "log": True}
    assert props["mode"] == {"type": "string", "enum": ["a", "b"], "default": "a", "description": "A mode.",
                             "x-tao-default": "b"}
    assert props["maybe_mode"]["type"] == ["null", "string"] and props["maybe_mode"]["enum"] == ["x", "y", None]
    assert props["names"]["type"] == "array" and props["names"]["items"] == {"type": "string"}
    assert props["names"]["default"] == ["n"]
    assert props["weights"]["type"] == ["null", "object"]
    assert props["weights"]["additionalProperties"] == {"type": "integer"}
    assert props["path"]["x-required-for"] == ["train"]


def test_unsupported_annotation_is_a_clear_error():
    assert type_schema(int | str, "probe.key") == {"type": ["integer", "string"],
                                                   "anyOf": [{"type": "integer"}, {"type": "string"}]}
    with pytest.raises(KeySchemaError, match="probe.key: Optional unions of several types are not supported"):
        type_schema(int | str | None, "probe.key")
    with pytest.raises(KeySchemaError, match="probe.key: dict keys must be str"):
        type_schema(dict[int, int], "probe.key")


def test_changing_one_default_changes_exactly_its_lines(tmp_path, generated):
    """Copy the package, change dataset.image_ext's default in the copy's source, regenerate in a subprocess."""
    pkg = tmp_path / "pkg"
    shutil.copytree(REPO / "optical_inspection", pkg / "optical_inspection",
                    ignore=shutil.ignore_patterns("__pycache__"))
    source = pkg / "optical_inspection/config/dataset.py"
    text = source.read_text(encoding="utf-8")
    assert text.count('spec_field(".jpg"') == 1
    source.write_text(text.replace('spec_field(".jpg"', 'spec_field(".png"'), encoding="utf-8")
    script = textwrap.dedent(f"""
        import json, sys
        from pathlib import Path
        sys.path[:0] = [{str(pkg)!r}, {str(REPO)!r}]
        import optical_inspection
        assert optical_inspection.__file__.startswith({str(pkg)!r}), optical_inspection.__file__
        from generators.outputs import render_all
        print(json.dumps(render_all(Path({str(REPO)!r}))))
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    changed = json.loads(proc.stdout)
    assert set(changed) == set(generated)
    readers = {a for a, sections in ACTION_SECTIONS.items() if "dataset" in sections}
    expected_files = {f"schemas/{a}.schema.json" for a in readers} | {f"references/spec_template_{a}.yaml"
                                                                        for a in readers}
    expected_files |= {f"references/spec_template_deploy_{a}.yaml" for a in readers
                       if f"references/spec_template_deploy_{a}.yaml" in generated}
    diffs = {}
    for rel in generated:
        if changed[rel] != generated[rel]:
            lines = list(difflib.ndiff(generated[rel].splitlines(), changed[rel].splitlines()))
            diffs[rel] = ([line[2:] for line in lines if line.startswith("- ")],
                          [line[2:] for line in lines if line.startswith("+ ")])
    assert set(diffs) == expected_files
    for rel, (removed, added) in diffs.items():
        assert len(removed) == 1 and added == [removed[0].replace(".jpg", ".png")], (rel, removed, added)
        wanted = "  image_ext: .jpg" if rel.endswith(".yaml") else '"default": ".jpg"'
        assert removed[0].strip().rstrip(",") == wanted.strip(), rel


def test_owned_patterns_match_generated_names(generated):
    for rel in generated:
        if not rel.startswith("skills/"):
            assert any(Path(rel).match(p) for p in OWNED_PATTERNS), rel
