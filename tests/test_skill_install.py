"""`optical_inspection skills install|uninstall|list`: valid, self-contained, idempotent, careful with edits."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO
from optical_inspection.skill_install import InstallError, install, skill_names, status, uninstall

LINK = re.compile(r"\]\(([^)\s]+)\)")


def _cli(*args: str, cwd: Path, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "optical_inspection", "skills", *args], cwd=cwd,
                          capture_output=True, text=True, env={"PYTHONPATH": str(REPO), "HOME": str(home),
                                                               "PATH": "/usr/bin:/bin"})


def _tree(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.relative_to(folder).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_installed_folders_are_valid_skills_whose_links_all_resolve_and_a_second_install_is_a_no_op(tmp_path):
    validate = pytest.importorskip("skills_ref.validator", reason="skills-ref (dev extra) needs Python >= 3.11")
    dest = tmp_path / "skills"
    done = _cli("install", "--agent", str(dest), cwd=tmp_path, home=tmp_path)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert [s["state"] for s in answer["skills"]] == ["installed"] * len(skill_names())
    names = {p.name for p in dest.iterdir()}
    assert names == set(skill_names()) == {"optical-inspection", "optical-inspection-tensorrt"}
    checked = 0
    for folder in dest.iterdir():
        assert validate.validate(folder) == [], folder
        assert (folder / "schemas" / "train.schema.json").is_file()
        assert (folder / "references" / "spec_template_train.yaml").is_file()
        for md in folder.rglob("*.md"):
            for target in LINK.findall(md.read_text(encoding="utf-8")):
                if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                    continue
                resolved = (md.parent / target.partition("#")[0]).resolve()
                assert resolved.is_file(), f"{md}: link {target} does not resolve"
                assert dest.resolve() in resolved.parents, f"{md}: link {target} leaves the skills folder"
                checked += 1
    assert checked > 30

    before = _tree(dest)
    again = _cli("install", "--agent", str(dest), cwd=tmp_path, home=tmp_path)
    assert again.returncode == 0 and [s["state"] for s in json.loads(again.stdout)["skills"]] == ["unchanged"] * 2
    assert _tree(dest) == before                                   # not even rewritten


def test_a_changed_or_foreign_folder_is_refused_without_force_and_nothing_is_written(tmp_path):
    dest = tmp_path / "skills"
    install(dest)
    skill_md = dest / "optical-inspection" / "SKILL.md"
    skill_md.write_text(skill_md.read_text() + "\nmy own note\n")
    before = _tree(dest)
    done = _cli("install", "--agent", str(dest), cwd=tmp_path, home=tmp_path)
    assert done.returncode == 1 and "was changed since it was installed (SKILL.md)" in done.stderr
    assert "--force" in done.stderr and _tree(dest) == before
    assert {o.skill: o.state for o in status(dest)}["optical-inspection"] == "changed"
    with pytest.raises(InstallError, match="nothing was removed"):
        uninstall(dest)
    assert _tree(dest) == before

    forced = _cli("install", "--agent", str(dest), "--force", cwd=tmp_path, home=tmp_path)
    assert forced.returncode == 0 and "my own note" not in skill_md.read_text()
    assert [o.state for o in status(dest)] == ["current", "current"]

    foreign = tmp_path / "other"
    (foreign / "optical-inspection").mkdir(parents=True)
    (foreign / "optical-inspection" / "SKILL.md").write_text("someone else's skill\n")
    with pytest.raises(InstallError, match="was not installed by optical_inspection"):
        install(foreign)
    assert (foreign / "optical-inspection" / "SKILL.md").read_text() == "someone else's skill\n"
    assert not (foreign / "optical-inspection-tensorrt").exists()  # checked before anything is written


def test_an_untouched_install_is_updated_in_place_when_the_bank_changes(tmp_path):
    bank = tmp_path / "bank"
    for name in ("skills", "schemas", "references"):
        shutil.copytree(REPO / name, bank / name)
    dest = tmp_path / "skills"
    install(dest, root=bank)
    doc = bank / "skills" / "optical-inspection" / "references" / "data.md"
    doc.write_text(doc.read_text() + "\nA new paragraph.\n")
    assert [o.state for o in status(dest, root=bank)] == ["outdated", "current"]
    assert [o.state for o in install(dest, root=bank)] == ["updated", "unchanged"]
    assert (dest / "optical-inspection" / "references" / "data.md").read_text().endswith("A new paragraph.\n")
    assert not [p for p in dest.iterdir() if p.name.startswith(".")]   # no staging or old folders left


def test_agent_folders_project_folders_uninstall_and_list(tmp_path):
    home, project = tmp_path / "home", tmp_path / "project"
    project.mkdir()
    assert _cli("install", "--agent", "codex", cwd=project, home=home).returncode == 0
    assert (home / ".agents" / "skills" / "optical-inspection" / "SKILL.md").is_file()
    assert _cli("install", "--agent", "claude", "--project", cwd=project, home=home).returncode == 0
    assert (project / ".claude" / "skills" / "optical-inspection-tensorrt" / "SKILL.md").is_file()
    listed = json.loads(_cli("list", "--agent", "claude", "--project", cwd=project, home=home).stdout)
    assert [s["state"] for s in listed["skills"]] == ["current", "current"]
    removed = _cli("uninstall", "--agent", "codex", cwd=project, home=home)
    assert [s["state"] for s in json.loads(removed.stdout)["skills"]] == ["removed", "removed"]
    assert list((home / ".agents" / "skills").iterdir()) == []
    assert _cli("list", "--agent", "codex", cwd=project, home=home).returncode == 0
    (tmp_path / "a_file").write_text("x")
    refused = _cli("install", "--agent", str(tmp_path / "a_file"), cwd=project, home=home)
    assert refused.returncode == 1 and refused.stderr.startswith("ERROR:") and "a_file" in refused.stderr
    assert (tmp_path / "a_file").read_text() == "x"


def test_plugin_manifests_list_every_skill_and_point_at_files_that_exist():
    market = json.loads((REPO / ".claude-plugin" / "marketplace.json").read_text())
    listed = market["plugins"][0]["skills"]
    assert sorted(Path(p).name for p in listed) == skill_names()
    assert all((REPO / p / "SKILL.md").is_file() for p in listed)
    for manifest in (".claude-plugin/plugin.json", ".codex-plugin/plugin.json"):
        plugin = json.loads((REPO / manifest).read_text())
        assert plugin["name"] == "optical-inspection" and (REPO / plugin["skills"]).is_dir()
        servers = json.loads((REPO / plugin["mcpServers"]).read_text())["mcpServers"]
        assert servers["optical-inspection"]["args"] == ["-m", "runners", "mcp"]
