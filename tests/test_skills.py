"""The skills follow the Agent Skills standard, every relative link resolves, and every runner call they show
is valid for this project (actions, data sources, overrides that validate against the action's schema)."""
from __future__ import annotations

import copy
import json
import re
import shlex
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from generators.outputs import fill_placeholders
from generators.skill_docs import TEMPLATES, split_blocks
from optical_inspection.config import ACTIONS
from optical_inspection.spec import set_dotted

REPO = Path(__file__).resolve().parent.parent
SKILLS = sorted(p.parent for p in (REPO / "skills").glob("*/SKILL.md"))
DOCS = sorted((REPO / "skills").rglob("*.md"))
ALLOWED_FIELDS = {"name", "description", "license", "compatibility", "metadata", "allowed-tools"}
NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
SKILL_INFO = yaml.safe_load((REPO / "references/skill_info.yaml").read_text(encoding="utf-8"))


def split_frontmatter(text: str) -> tuple[dict[str, Any], str]:
    assert text.startswith("---\n"), "SKILL.md must start with YAML frontmatter"
    head, sep, body = text[4:].partition("\n---\n")
    assert sep, "frontmatter is not closed with ---"
    data = yaml.safe_load(head)
    assert isinstance(data, dict), "frontmatter must be a mapping"
    return data, body


def test_there_are_two_skills():
    assert {p.name for p in SKILLS} >= {"optical-inspection", "optical-inspection-tensorrt"}


@pytest.mark.parametrize("skill", SKILLS, ids=lambda p: p.name)
def test_frontmatter_follows_the_standard(skill):
    meta, body = split_frontmatter((skill / "SKILL.md").read_text(encoding="utf-8"))
    assert set(meta) <= ALLOWED_FIELDS, f"unexpected fields {set(meta) - ALLOWED_FIELDS}"
    name = meta["name"]
    assert isinstance(name, str) and NAME.match(name) and len(name) <= 64, name
    assert name == skill.name, "name must equal the folder name"
    description = meta["description"]
    assert isinstance(description, str) and 1 <= len(description) <= 1024, len(description)
    assert "<" not in description and ">" not in description, "no markup in the description"
    assert "use this skill when" in description.lower(), "say when to use it"
    if "compatibility" in meta:
        assert isinstance(meta["compatibility"], str) and 1 <= len(meta["compatibility"]) <= 500
    if "metadata" in meta:
        assert isinstance(meta["metadata"], dict)
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in meta["metadata"].items())
    if "allowed-tools" in meta:
        assert isinstance(meta["allowed-tools"], str)
    assert isinstance(meta.get("license", ""), str)
    assert len(body.splitlines()) < 500, "keep SKILL.md under 500 lines; move details to references/"


@pytest.mark.parametrize("skill", SKILLS, ids=lambda p: p.name)
def test_reference_validator_accepts_the_skill(skill):
    skills_ref = pytest.importorskip("skills_ref", reason="skills-ref (dev extra) needs Python >= 3.11")
    assert skills_ref.validate(skill) == []


def test_reference_validator_rules_catch_a_bad_skill(tmp_path):
    """Our own rules must reject what the standard rejects (guards the test above when skills-ref is absent)."""
    bad = tmp_path / "Bad--Skill"
    bad.mkdir()
    (bad / "SKILL.md").write_text("---\nname: Bad--Skill\ndescription: x\ntags: [a]\n---\nbody\n")
    meta, _ = split_frontmatter((bad / "SKILL.md").read_text())
    assert set(meta) - ALLOWED_FIELDS == {"tags"}
    assert not NAME.match(meta["name"])


@pytest.mark.parametrize("skill", SKILLS, ids=lambda p: p.name)
def test_reference_docs_are_one_level_deep_and_linked(skill):
    text = (skill / "SKILL.md").read_text(encoding="utf-8")
    for doc in skill.rglob("*"):
        rel = doc.relative_to(skill)
        if doc.is_file() and rel.name != "SKILL.md":
            assert len(rel.parts) == 2 and rel.parts[0] == "references", f"{rel}: keep extra files in references/"
            assert f"({rel.as_posix()}" in text, f"SKILL.md never links {rel}"


def _slugs(doc: Path) -> set[str]:
    """GitHub heading anchors of a Markdown file."""
    slugs = set()
    in_code = False
    for line in doc.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            slugs.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return slugs


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_resolves(doc):
    links = LINK.findall(doc.read_text(encoding="utf-8"))
    assert links or doc.name != "SKILL.md"
    for target in links:
        if re.match(r"^[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        resolved = (doc.parent / path).resolve() if path else doc
        assert resolved.exists(), f"{doc.name}: broken link {target}"
        assert REPO in resolved.parents, f"{doc.name}: link {target} leaves the repository"
        if anchor:
            assert resolved.suffix == ".md" and anchor in _slugs(resolved), f"{doc.name}: no heading #{anchor}"


def test_generated_blocks_are_filled_and_every_table_is_used():
    used = set()
    for doc in DOCS:
        for piece in split_blocks(doc.name, doc.read_text(encoding="utf-8")):
            if isinstance(piece, tuple):
                used.add(piece[2])
        text = doc.read_text(encoding="utf-8")
        for match in re.finditer(r"<!-- BEGIN GENERATED: (\w+) -->\n(.*?)<!-- END GENERATED", text, re.S):
            assert match.group(2).count("\n|") >= 2, f"{doc.name}: block {match.group(1)} is empty"
    assert used == {p.name.removesuffix(".md.j2") for p in TEMPLATES.glob("*.md.j2")}


# ---------------------------------------------------------------- the runner calls shown to agents

def _commands(doc: Path) -> list[list[str]]:
    """Every shell command in the doc's ```bash blocks (continuation lines joined)."""
    blocks = re.findall(r"```bash\n(.*?)```", doc.read_text(encoding="utf-8"), re.S)
    commands = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" # ")[0].strip()
            if line and not line.startswith("#"):
                commands.append(shlex.split(line))
    return commands


RUNNER_CALLS = [(doc, argv) for doc in DOCS for argv in _commands(doc) if argv[:3] == ["python", "-m", "runners"]]


def test_docs_show_a_runner_call_for_every_action_and_verb():
    shown = {(argv[3], argv[4] if argv[3] in ("plan", "run") else None) for _, argv in RUNNER_CALLS}
    for action in ACTIONS:
        assert ("run", action) in shown, f"no `python -m runners run {action}` example"
    assert ("plan", "train") in shown
    for verb in ("status", "logs", "cancel"):
        assert any(v == verb for v, _ in shown), verb


def _options(argv: list[str]) -> list[tuple[str, str | None]]:
    out, i = [], 0
    while i < len(argv):
        if argv[i] in ("--detach",):
            out.append((argv[i], None))
            i += 1
        elif argv[i].startswith("--"):
            out.append((argv[i], argv[i + 1]))
            i += 2
        else:
            raise AssertionError(f"stray argument {argv[i]!r}")
    return out


@pytest.mark.parametrize("doc, argv", RUNNER_CALLS, ids=[f"{d.name}:{' '.join(a[3:5])}" for d, a in RUNNER_CALLS])
def test_runner_call_is_valid(doc, argv):
    verb = argv[3]
    assert verb in {"plan", "run", "status", "list", "show", "cancel", "logs"}, verb
    if verb not in ("plan", "run"):
        return
    action = argv[4]
    assert action in SKILL_INFO["actions"], action
    template = REPO / f"references/spec_template_{action}.yaml"
    spec = fill_placeholders(yaml.safe_load(template.read_text(encoding="utf-8")), "/data/example")
    for flag, value in _options(argv[5:]):
        assert flag in {"--data", "--overrides", "--parent-job", "--checkpoint", "--automl-policy", "--request",
                        "--jobs-root", "--detach"}, flag
        if flag == "--data":
            source = value.split("=", 1)[0]
            assert source in SKILL_INFO["data_sources"].get(action, {}), f"{action} has no data source {source}"
        elif flag == "--checkpoint":
            assert re.fullmatch(r"best|latest|epoch=\d+", value), value
        elif flag == "--automl-policy":
            assert value in ("on", "off")
        elif flag == "--overrides":
            overrides = json.loads(value)
            assert isinstance(overrides, dict)
            spec = _apply(copy.deepcopy(spec), overrides)
    schema = json.loads((REPO / f"schemas/{action}.schema.json").read_text(encoding="utf-8"))
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
              for e in jsonschema.Draft202012Validator(schema).iter_errors(spec)]
    assert errors == [], f"{doc.name}: {' '.join(argv)}"


def _apply(spec: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    shorthand = SKILL_INFO["shorthand_keys"]
    for key, value in overrides.items():
        targets = shorthand.get(key, key)
        for target in [targets] if isinstance(targets, str) else targets:
            set_dotted(spec, target, value)
    return spec


TRAINER_CALLS = [(doc, argv) for doc in DOCS for argv in _commands(doc) if argv[0] == "optical_inspection"]


@pytest.mark.parametrize("doc, argv", TRAINER_CALLS, ids=[f"{d.name}:{a[1]}" for d, a in TRAINER_CALLS])
def test_trainer_call_uses_an_existing_template(doc, argv):
    assert argv[1] in ACTIONS and argv[2] == "-e"
    assert (REPO / argv[3]).is_file(), argv[3]
