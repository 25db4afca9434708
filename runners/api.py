"""Python API of the runner: plan a job, run it (waiting or detached), inspect and cancel jobs.

Spec building order: template (or, when resuming, the parent's spec) → shorthand keys → overrides → data sources
→ parent mappings (the parent's model/geometry keys, then skill_info spec_params) → validation against the
action's JSON Schema (every problem at once). ``run`` also checks the spec with the trainer's own rules
(cross-key checks) before it writes anything, then records the job, resolves the data for real (download,
extraction), writes the spec and launches the trainer.
"""
from __future__ import annotations

import copy
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from optical_inspection.config.walk import KeyIndex, action_index
from optical_inspection.cross_checks import cross_key_problems
from optical_inspection.dotted import get_dotted
from optical_inspection.input_limits import structure_problem
from optical_inspection.redaction import SECRET_SPEC_KEYS

from .automl.settings import storage_problems
from .cache import ContentCache
from .checkpoints import PRETRAINED, parse_request
from .errors import DataSourceError, RequestError, RunnerError
from .launch import cancel, clear_stale_temps, reconcile, set_supervisor, start_detached, supervise
from .parents import ACCEPTED_PARENTS, Parent, article, action_results, is_resume, load_parent, resolve_mappings
from .policy import PolicyDecision, resolve_policy
from .records import TERMINAL, JobRecord, JobStore, is_automl_job, now_iso
from .skill_info import SkillInfo, load_skill_info
from .sources import collect_sources
from .specbuild import SpecDraft, apply_overrides, load_schema, load_template, validate, write_spec
from .specfile import replaced_spec_values, spec_file_base

DEFAULT_JOBS_ROOT = "oi_jobs"
NEW_JOB = "<new-job-id>"


@dataclass
class JobRequest:
    """What the user asked for (CLI flags or API arguments)."""

    action: str
    request: str | None = None
    automl_policy: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    data: dict[str, list[str]] = field(default_factory=dict)
    parent_job: str | None = None
    checkpoint: str | None = None
    spec_file: str | None = None


@dataclass
class Plan:
    """A resolved job: the spec, where each value came from, and every decision with its reason."""

    action: str
    automl_policy: PolicyDecision
    draft: SpecDraft
    base_spec: str
    data_sources: dict[str, Any]
    parent: dict[str, Any]
    results_folder: str
    warnings: list[str] = field(default_factory=list)
    automl_estimate: dict[str, Any] | None = None

    def decisions(self) -> dict[str, Any]:
        return {
            "automl_policy": self.automl_policy.as_dict(),
            "base_spec": self.base_spec,
            "warnings": self.warnings,
            **({"automl_estimate": self.automl_estimate} if self.automl_estimate else {}),
            "spec_values": self.draft.provenance(),
            "data_sources": self.data_sources,
            "parent": self.parent,
            "results_folder": self.results_folder,
        }

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "automl_policy": self.automl_policy.as_dict(), "spec": self.draft.masked(),
                "warnings": self.warnings, "decisions": self.decisions()}


def build_plan(req: JobRequest, store: JobStore, job_dir: Path, materialize: bool,
               skill: SkillInfo | None = None) -> Plan:
    """Resolve a request into a validated spec; RequestError lists every problem."""
    skill = skill or load_skill_info()
    skill.check_action(req.action)
    policy = resolve_policy(req.action, req.automl_policy, req.request, skill)
    checkpoint = parse_request(req.checkpoint) if req.checkpoint else None
    if checkpoint is not None and checkpoint.kind == PRETRAINED and req.parent_job:
        raise RequestError(f"--checkpoint pretrained uses the bundled weights; it takes no --parent-job "
                           f"(got {req.parent_job})")
    parent = load_parent(store, req.parent_job) if req.parent_job else None
    if checkpoint is not None and checkpoint.kind != PRETRAINED and parent is None:
        raise RequestError(f"--checkpoint {req.checkpoint} needs --parent-job (the train job to take it from)")
    schema = load_schema(skill, req.action)
    keys = action_index(req.action)
    warnings: list[str] = []
    if is_resume(req.action, parent):
        assert parent is not None
        if req.spec_file:
            raise RequestError(f"--spec {req.spec_file}: resuming parent job {parent.record.id} continues its own "
                               "spec; drop --spec (or use --overrides for what should change)")
        draft = SpecDraft(copy.deepcopy(parent.spec))
        base = f"parent job {parent.record.id}'s spec (resuming a {parent.record.status} train job)"
        if draft.get(f"{req.action}.results_dir"):
            draft.set(f"{req.action}.results_dir", None, "runner: a job writes into its own folder only")
    elif req.spec_file:
        base_data, warnings = spec_file_base(req.spec_file, load_template(skill, req.action), keys, req.action)
        draft = SpecDraft(base_data)
        base = (f"spec file {Path(req.spec_file).resolve()} "
                f"(keys it leaves out: template {skill.template_path(req.action)})")
    else:
        draft = SpecDraft(load_template(skill, req.action))
        base = f"template {skill.template_path(req.action)}"
    problems, overrides = _refused_overrides(req.overrides)
    problems += apply_overrides(draft, overrides, skill, keys, req.action)
    cache = ContentCache(store.cache_root)
    assignments, resolved, data_problems = collect_sources(req.action, req.data, skill, cache, materialize)
    for key, value, source in assignments:
        _assign(draft, key, value, source, problems)
    if parent is not None and not is_resume(req.action, parent):
        _inherit(draft, parent, skill, keys)
    mappings, parent_details = resolve_mappings(req.action, skill, draft.data, parent, str(job_dir / "results"),
                                                checkpoint)
    spec_values = copy.deepcopy(draft.data) if req.spec_file else {}
    for key, value, source in mappings:
        _assign(draft, key, value, source, problems)
    warnings += replaced_spec_values(spec_values, draft, req.spec_file) if req.spec_file else []
    problems += validate(draft, schema, req.action, _hints(req.action, skill))
    if policy.value == "on":
        from .automl.space import space_problems

        problems += space_problems(draft.data, keys, skill.shorthand_keys)
    problems += storage_problems(draft.data)
    problems += cross_key_problems(draft.data, req.action)  # the trainer's own rules, so plan refuses what run would
    folder = action_results(draft.data, req.action)
    if not Path(folder).resolve().is_relative_to(job_dir.resolve()):
        problems.append(f"{req.action}.results_dir: this job would write into {folder}, outside its own folder "
                        f"{job_dir}; a job writes only into its own results folder")
    if data_problems:
        raise DataSourceError(data_problems + problems)
    if problems:
        raise RequestError(problems)
    if materialize and parent is not None and is_resume(req.action, parent) and not is_automl_job(parent.record):
        parent_details["stale_temps_removed"] = clear_stale_temps(Path(action_results(parent.spec, "train")))
    estimate = None
    if policy.value == "on":
        from .automl.estimate import estimate_search
        from .automl.settings import read_settings

        estimate = estimate_search(draft.data, read_settings(draft.data, skill), store)
    return Plan(req.action, policy, draft, base, resolved, parent_details, folder, warnings, estimate)


def plan_job(action: str, *, jobs_root: str | Path = DEFAULT_JOBS_ROOT, **kwargs: Any) -> Plan:
    """Resolve a job without launching or writing anything (data is checked, not downloaded or extracted)."""
    req = make_request(action, **kwargs)
    store = open_store(jobs_root)
    return build_plan(req, store, store.root / NEW_JOB, materialize=False)


def run_job(action: str, *, jobs_root: str | Path = DEFAULT_JOBS_ROOT, detach: bool = False,
            **kwargs: Any) -> JobRecord:
    """Plan, record and launch a job; wait for it unless ``detach``. Returns the job record (check ``.status``).

    Raises RequestError/NotFoundError/DataSourceError before launch; nothing is written when the request itself
    is invalid. kwargs: request, automl_policy, overrides, data ({source: location or [locations]}),
    parent_job, checkpoint.
    """
    req = make_request(action, **kwargs)
    store = open_store(jobs_root)
    skill = load_skill_info()
    build_plan(req, store, store.root / NEW_JOB, materialize=False, skill=skill)  # refuse before writing anything
    record = store.create(action, req.parent_job)
    store.update(record.id, lambda r: set_supervisor(r, os.getpid()))
    try:
        plan = build_plan(req, store, Path(record.job_dir), materialize=True, skill=skill)
        write_spec(plan.draft, Path(record.spec_path))
    except RunnerError as exc:
        message, code = str(exc), exc.exit_code
        store.update(record.id, lambda r: _fail(r, message, code))
        raise

    def planned(r: JobRecord) -> None:
        r.automl_policy, r.decisions = plan.automl_policy.as_dict(), plan.decisions()

    record = store.update(record.id, planned)
    if plan.automl_policy.value == "on":
        from .automl_bridge import launch_automl

        return launch_automl(store, record, detach=detach)
    if detach:
        return start_detached(store, record)
    return supervise(store, record.id)


def make_request(action: str, *, request: str | None = None, automl_policy: str | None = None,
                 overrides: Mapping[str, Any] | None = None, data: Mapping[str, Any] | None = None,
                 parent_job: str | None = None, checkpoint: str | None = None,
                 spec_file: str | Path | None = None) -> JobRequest:
    shape = structure_problem(dict(overrides or {}), "overrides")
    if shape:
        raise RequestError(shape)
    sources: dict[str, list[str]] = {}
    for source, where in (data or {}).items():
        sources[source] = [str(w) for w in where] if isinstance(where, (list, tuple)) else [str(where)]
    return JobRequest(action, request, automl_policy, dict(overrides or {}), sources, parent_job, checkpoint,
                      str(spec_file) if spec_file else None)


def job_status(job_id: str, jobs_root: str | Path = DEFAULT_JOBS_ROOT) -> JobRecord:
    """The job's record (a job whose runner vanished is marked failed first)."""
    store = open_store(jobs_root)
    return reconcile(store, store.load(job_id))


def list_jobs(jobs_root: str | Path = DEFAULT_JOBS_ROOT) -> list[JobRecord]:
    store = open_store(jobs_root)
    return [reconcile(store, r) for r in store.list()]


def cancel_job(job_id: str, jobs_root: str | Path = DEFAULT_JOBS_ROOT) -> JobRecord:
    return cancel(open_store(jobs_root), job_id)


def wait_job(job_id: str, jobs_root: str | Path = DEFAULT_JOBS_ROOT, timeout_s: float = 3600.0) -> JobRecord:
    """Poll a (detached) job until it reaches success, failure or cancelled."""
    deadline = time.monotonic() + timeout_s
    while True:
        record = job_status(job_id, jobs_root)
        if record.status in TERMINAL:
            return record
        if time.monotonic() > deadline:
            raise RunnerError(f"job {job_id} is still {record.status} after {timeout_s:.0f} s")
        time.sleep(0.5)


# ---------------------------------------------------------------- helpers

def open_store(jobs_root: str | Path) -> JobStore:
    """The JobStore of ``jobs_root``; RequestError when it, or a folder above it, is a file."""
    store = JobStore(jobs_root)
    for folder in (store.root, *store.root.parents):
        if folder.exists():
            if not folder.is_dir():
                where = "is a file" if folder == store.root else f"is under the file '{folder}'"
                raise RequestError(f"--jobs-root '{jobs_root}' {where}; give a folder (it is created if missing)")
            break
    return store


def _refused_overrides(overrides: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """Problems of overrides the runner never takes, and the other overrides.

    - ``results_dir`` / ``<action>.results_dir``: every job writes into its own folder, never another job's.
    - a secret key (``encryption_key``) with a value: it would be written into the spec; the value comes from
      the environment (``${oc.env:OI_ENCRYPTION_KEY}``, resolved by the trainer at run time) instead.
    """
    problems, kept = [], {}
    for key, value in overrides.items():
        if key == "results_dir" or key.endswith(".results_dir"):
            problems.append(f"{key}: results folders belong to the runner (each job writes into "
                            "<jobs-root>/<job id>/results/, so no job can write into another's); drop this "
                            "override, and chain jobs with --parent-job")
        elif key in SECRET_SPEC_KEYS and value and not str(value).startswith("${oc.env:"):
            env = SECRET_SPEC_KEYS[key]
            problems.append(f"{key}: a value given in --overrides would be written into the job's spec; set the "
                            f"environment variable {env} instead (the spec then holds ${{oc.env:{env}}}, which "
                            "the trainer resolves at run time)")
        else:
            kept[key] = value
    return problems, kept


def _assign(draft: SpecDraft, key: str, value: Any, source: str, problems: list[str]) -> None:
    """Set a runner-resolved value; an explicit override of the same key with another value is a conflict."""
    previous = draft.sources.get(key, "")
    if previous.startswith("override") and draft.get(key) != value:
        problems.append(f"{key}: set by --overrides ({draft.get(key)!r}) and by {source}; drop the override")
        return
    draft.set(key, value, source)


def _inherit(draft: SpecDraft, parent: Parent, skill: SkillInfo, keys: KeyIndex) -> None:
    """Copy the parent's model and geometry keys (skill_info parent_spec_keys), leaf by leaf; overrides win."""
    for key in skill.parent_spec_keys:
        if not keys.allows(key):
            continue
        for leaf, value in keys.leaves(key, get_dotted(parent.spec, key, _ABSENT)):
            if draft.sources.get(leaf, "").startswith("override") or value is _ABSENT:
                continue
            if draft.get(leaf, _ABSENT) != value:
                draft.set(leaf, copy.deepcopy(value), f"parent job {parent.record.id}'s spec")


_ABSENT = object()


def _hints(action: str, skill: SkillInfo) -> dict[str, str]:
    """How to fill each key the runner can fill, for 'a value is required' messages."""
    hints = {}
    for source, mappings in skill.data_sources(action).items():
        for mapping in mappings:
            for key in mapping.values():
                hints[key] = f"give --data {source}=LOCATION"
    for key, fn in skill.spec_params(action).items():
        if fn == "parent_model":
            names = ACCEPTED_PARENTS.get(key, ("train",))
            hints[key] = (f"give --parent-job JOB_ID ({article(names[0])} {' or '.join(names)} job), "
                          "or set it with --overrides")
    return hints


def _fail(record: JobRecord, message: str, code: int) -> None:
    record.status, record.finished, record.message, record.exit_code = "failure", now_iso(), message, code
