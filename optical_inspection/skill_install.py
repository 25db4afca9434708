"""`optical_inspection skills install|uninstall|list`: self-contained skill folders in an agent's skills folder.

Each skill of the bank becomes ``<dest>/<skill>/`` holding its SKILL.md and references, plus copies of the bank's
``references/`` (spec templates, skill_info.yaml) and ``schemas/``; every relative Markdown link is rewritten so
that it resolves inside the installed folders. A manifest (``.optical-inspection.json``: version and each file's
sha256) makes a second install a no-op and tells an untouched install (updated in place) from one a user changed
(refused without ``--force``). Each folder is written beside its target and renamed into place.
Torch-free, like the runner.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from . import __version__
from .skill_bank import bank_root

MANIFEST = ".optical-inspection.json"
SHARED_FOLDERS = ("references", "schemas")  # bank folders copied into every installed skill
AGENT_FOLDERS = {  # agent -> (user-wide folder under $HOME, project folder under the current directory)
    "claude": (".claude/skills", ".claude/skills"),
    "codex": (".agents/skills", ".agents/skills"),
}
_LINK = re.compile(r"(\]\()([^)\s]+)(\))")
EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2


class InstallError(Exception):
    """A refusal with what to do about it (exit 1)."""


@dataclass(frozen=True)
class Outcome:
    skill: str
    path: Path
    state: str  # installed | updated | unchanged | removed | absent


def skill_names(root: Path | None = None) -> list[str]:
    """The bank's skills: folders under skills/ that hold a SKILL.md."""
    skills = (root or bank_root()) / "skills"
    return sorted(p.parent.name for p in skills.glob("*/SKILL.md"))


def render_skill(name: str, root: Path | None = None) -> dict[str, bytes]:
    """Every file of the installed ``<name>/`` folder (relative POSIX path -> bytes), links rewritten."""
    root = root or bank_root()
    source = root / "skills" / name
    files: dict[str, bytes] = {}
    for folder, prefix in [(source, ""), *((root / f, f + "/") for f in SHARED_FOLDERS)]:
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            rel = prefix + path.relative_to(folder).as_posix()
            if rel in files:
                raise InstallError(f"{path} and skills/{name}/{rel} would both install as {name}/{rel}; rename one")
            data = path.read_bytes()
            if path.suffix == ".md":
                data = _rewrite_links(data.decode("utf-8"), path, rel, name, root).encode("utf-8")
            files[rel] = data
    return files


def _installed_place(bank_path: PurePosixPath, name: str) -> PurePosixPath:
    """Where a bank file lands, relative to the installed ``<name>/`` folder (``..`` = the agent's folder)."""
    parts = bank_path.parts
    if parts[:1] == ("skills",) and len(parts) >= 2:
        return PurePosixPath(*parts[2:]) if parts[1] == name else PurePosixPath("..", *parts[1:])
    if parts[:1] and parts[0] in SHARED_FOLDERS:
        return bank_path
    raise ValueError(str(bank_path))


def _rewrite_links(text: str, path: Path, rel: str, name: str, root: Path) -> str:
    here = PurePosixPath(rel).parent

    def fix(match: re.Match[str]) -> str:
        target = match.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith(("#", "/")):
            return match.group(0)  # URLs, anchors and absolute paths stay as they are
        file_part, _, anchor = target.partition("#")
        resolved = Path(os.path.normpath(path.parent / file_part))
        try:
            place = _installed_place(PurePosixPath(resolved.relative_to(root).as_posix()), name)
        except ValueError:
            raise InstallError(f"{path}: link '{target}' points outside the skill bank; an installed skill "
                               f"could not follow it (link into skills/, references/ or schemas/)") from None
        new = PurePosixPath(os.path.relpath(place.as_posix(), here.as_posix() or "."))
        return f"{match.group(1)}{new.as_posix()}{'#' + anchor if anchor else ''}{match.group(3)}"

    return _LINK.sub(fix, text)


def destination(agent: str | None, directory: str | None, project: bool) -> Path:
    """The agent's skills folder: ``--agent DIR`` (or a known agent's user or project folder)."""
    if directory:
        return Path(directory).expanduser()
    user, proj = AGENT_FOLDERS[agent or "claude"]
    return Path.cwd() / proj if project else Path.home() / user


def _digests(files: dict[str, bytes]) -> dict[str, str]:
    return {rel: hashlib.sha256(data).hexdigest() for rel, data in files.items()}


def _on_disk(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST}


def _recorded(folder: Path) -> dict[str, str] | None:
    """The file digests our manifest recorded, or None when the folder is not (readably) ours."""
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        files = data["files"]
        return files if isinstance(files, dict) else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _changed_by_user(folder: Path) -> str | None:
    """Why ``folder`` may not be replaced without --force (foreign or edited), or None."""
    recorded = _recorded(folder)
    if recorded is None:
        return f"{folder} exists and was not installed by optical_inspection (no readable {MANIFEST})"
    now = _on_disk(folder)
    edited = sorted(k for k in set(recorded) | set(now) if recorded.get(k) != now.get(k))
    if edited:
        more = " ..." if len(edited) > 5 else ""
        return f"{folder} was changed since it was installed ({', '.join(edited[:5])}{more})"
    return None


def install(dest: Path, force: bool = False, root: Path | None = None) -> list[Outcome]:
    """Install every skill of the bank into ``dest``; all are checked before any is written."""
    if dest.exists() and not dest.is_dir():
        raise InstallError(f"{dest} is a file, not a skills folder; give a folder with --agent")
    names = skill_names(root)
    rendered = {name: render_skill(name, root) for name in names}
    plans: list[tuple[str, str]] = []
    for name in names:
        target = dest / name
        if not target.exists():
            plans.append((name, "installed"))
        elif _on_disk(target) == _digests(rendered[name]) and _recorded(target) == _digests(rendered[name]):
            plans.append((name, "unchanged"))
        else:
            reason = None if force else _changed_by_user(target)
            if reason:
                raise InstallError(f"{reason}; nothing was installed. Pass --force to replace it")
            plans.append((name, "updated"))
    dest.mkdir(parents=True, exist_ok=True)
    for name, state in plans:
        if state != "unchanged":
            _write_folder(dest / name, rendered[name])
    return [Outcome(name, dest / name, state) for name, state in plans]


def _write_folder(target: Path, files: dict[str, bytes]) -> None:
    """Write the folder beside ``target`` and rename it into place (the old one is removed only after)."""
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for rel, data in files.items():
            out = staging / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
        manifest = {"installed_by": "optical_inspection", "version": __version__, "files": _digests(files)}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        staging.chmod(0o777 & ~_umask())
        old = None
        if target.exists() or target.is_symlink():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
        os.replace(staging, target)
        if old is not None:
            shutil.rmtree(old) if old.is_dir() and not old.is_symlink() else old.unlink()
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def uninstall(dest: Path, force: bool = False, root: Path | None = None) -> list[Outcome]:
    """Remove the bank's skills from ``dest``; a folder changed since install is kept unless ``force``."""
    outcomes = []
    for name in skill_names(root):
        target = dest / name
        if not target.exists():
            outcomes.append(Outcome(name, target, "absent"))
            continue
        reason = _changed_by_user(target)
        if reason and not force:
            raise InstallError(f"{reason}; nothing was removed. Pass --force to remove it anyway")
        shutil.rmtree(target)
        outcomes.append(Outcome(name, target, "removed"))
    return outcomes


def status(dest: Path, root: Path | None = None) -> list[Outcome]:
    """Each skill's state in ``dest``: current, outdated (ours, older), changed (edited or foreign) or absent."""
    outcomes = []
    for name in skill_names(root):
        target = dest / name
        if not target.exists():
            state = "absent"
        elif _changed_by_user(target):
            state = "changed"
        else:
            state = "current" if _recorded(target) == _digests(render_skill(name, root)) else "outdated"
        outcomes.append(Outcome(name, target, state))
    return outcomes


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="optical_inspection skills",
                                     description="Install the optical-inspection skills into an agent's skills folder.")
    sub = parser.add_subparsers(dest="verb", required=True)
    for verb, text in (("install", "write the skill folders (a no-op when they are current)"),
                       ("uninstall", "remove the skill folders"), ("list", "show each skill's state")):
        p = sub.add_parser(verb, help=text)
        p.add_argument("--agent", default="claude",
                       help="claude (~/.claude/skills), codex (~/.agents/skills) or a skills folder path")
        p.add_argument("--project", action="store_true",
                       help="the agent's folder in the current directory (.claude/skills, .agents/skills)")
        if verb != "list":
            p.add_argument("--force", action="store_true", help="replace or remove folders changed since install")
    args = parser.parse_args(argv)
    agent, directory = (args.agent, None) if args.agent in AGENT_FOLDERS else (None, args.agent)
    dest = destination(agent, directory, args.project)
    try:
        if args.verb == "install":
            outcomes = install(dest, args.force)
        elif args.verb == "uninstall":
            outcomes = uninstall(dest, args.force)
        else:
            outcomes = status(dest)
    except (InstallError, OSError) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    print(json.dumps({"destination": str(dest),
                      "skills": [{"name": o.skill, "path": str(o.path), "state": o.state} for o in outcomes]},
                     indent=2))
    return EXIT_OK
