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

from optical_inspection.cross_checks import cross_key_problems
from optical_inspection.dotted import get_dotted

from .cache import ContentCache
from .checkpoints import PRETRAINED, parse_request
from .errors import DataSourceError, RequestError, RunnerError
from .launch import cancel, reconcile, set_supervisor, start_detached, supervise
from .parents import ACCEPTED_PARENTS, Parent, action_results, is_resume, load_parent, resolve_mappings
from .policy import PolicyDecision, resolve_policy
from .records import TERMINAL, JobRecord, JobStore, now_iso
from .skill_info import SkillInfo, load_skill_info
from .sources import collect_sources
from .specbuild import SchemaKeys, SpecDraft, apply_overrides, load_schema, load_template, validate, write_spec

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

    def decisions(self) -> dict[str, Any]:
        return {
            "automl_policy": self.automl_policy.as_dict(),
            "base_spec": self.base_spec,
            "spec_values": self.draft.provenance(),
            "data_sources": self.data_sources,
            "parent": self.parent,
            "results_folder": self.results_folder,
        }

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "automl_policy": self.automl_policy.as_dict(), "spec": self.draft.masked(),
                "decisions": self.decisions()}


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
    keys = SchemaKeys(schema)
    if is_resume(req.action, parent):
        assert parent is not None
        draft = SpecDraft(copy.deepcopy(parent.spec))
        base = f"parent job {parent.record.id}'s spec (resuming a {parent.record.status} train job)"
    else:
        draft = SpecDraft(load_template(skill, req.action))
        base = f"template {skill.template_path(req.action)}"
    problems = apply_overrides(draft, req.overrides, skill, keys, req.action)
    cache = ContentCache(store.cache_root)
    assignments, resolved, data_problems = collect_sources(req.action, req.data, skill, cache, materialize)
    for key, value, source in assignments:
        _assign(draft, key, value, source, problems)
    if parent is not None and not is_resume(req.action, parent):
        _inherit(draft, parent, skill, keys)
    mappings, parent_details = resolve_mappings(req.action, skill, draft.data, parent, str(job_dir / "results"),
                                                checkpoint)
    for key, value, source in mappings:
        _assign(draft, key, value, source, problems)
    problems += validate(draft, schema, req.action, _hints(req.action, skill))
    if policy.value == "on":
        from .automl.space import space_problems

        problems += space_problems(draft.data, schema, skill.shorthand_keys)
    problems += cross_key_problems(draft.data, req.action)  # the trainer's own rules, so plan refuses what run would
    if data_problems:
        raise DataSourceError(data_problems + problems)
    if problems:
        raise RequestError(problems)
    return Plan(req.action, policy, draft, base, resolved, parent_details, action_results(draft.data, req.action))


def plan_job(action: str, *, jobs_root: str | Path = DEFAULT_JOBS_ROOT, **kwargs: Any) -> Plan:
    """Resolve a job without launching or writing anything (data is checked, not downloaded or extracted)."""
    req = make_request(action, **kwargs)
    store = JobStore(jobs_root)
    return build_plan(req, store, store.root / NEW_JOB, materialize=False)


def run_job(action: str, *, jobs_root: str | Path = DEFAULT_JOBS_ROOT, detach: bool = False,
            **kwargs: Any) -> JobRecord:
    """Plan, record and launch a job; wait for it unless ``detach``. Returns the job record (check ``.status``).

    Raises RequestError/NotFoundError/DataSourceError before launch; nothing is written when the request itself
    is invalid. kwargs: request, automl_policy, overrides, data ({source: location or [locations]}),
    parent_job, checkpoint.
    """
    req = make_request(action, **kwargs)
    store = JobStore(jobs_root)
    skill = load_skill_info()
    build_plan(req, store, store.root / NEW_JOB, materialize=False, skill=skill)  # refuse before writing anything
    record = store.create(action, req.parent_job)
    store.update(record.id, lambda r: set_supervisor(r, os.getpid()))
    try:
        plan = build_plan(req, store, Path(record.job_dir), materialize=True, skill=skill)
        write_spec(plan.draft, Path(record.spec_path))
    except RunnerError as exc:
        store.update(record.id, lambda r: _fail(r, str(exc), exc.exit_code))
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
                 parent_job: str | None = None, checkpoint: str | None = None) -> JobRequest:
    sources: dict[str, list[str]] = {}
    for source, where in (data or {}).items():
        sources[source] = [str(w) for w in where] if isinstance(where, (list, tuple)) else [str(where)]
    return JobRequest(action, request, automl_policy, dict(overrides or {}), sources, parent_job, checkpoint)


def job_status(job_id: str, jobs_root: str | Path = DEFAULT_JOBS_ROOT) -> JobRecord:
    """The job's record (a job whose runner vanished is marked failed first)."""
    store = JobStore(jobs_root)
    return reconcile(store, store.load(job_id))


def list_jobs(jobs_root: str | Path = DEFAULT_JOBS_ROOT) -> list[JobRecord]:
    store = JobStore(jobs_root)
    return [reconcile(store, r) for r in store.list()]


def cancel_job(job_id: str, jobs_root: str | Path = DEFAULT_JOBS_ROOT) -> JobRecord:
    return cancel(JobStore(jobs_root), job_id)


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

def _assign(draft: SpecDraft, key: str, value: Any, source: str, problems: list[str]) -> None:
    """Set a runner-resolved value; an explicit override of the same key with another value is a conflict."""
    previous = draft.sources.get(key, "")
    if previous.startswith("override") and draft.get(key) != value:
        problems.append(f"{key}: set by --overrides ({draft.get(key)!r}) and by {source}; drop the override")
        return
    draft.set(key, value, source)


def _inherit(draft: SpecDraft, parent: Parent, skill: SkillInfo, keys: SchemaKeys) -> None:
    """Copy the parent's model and geometry keys (skill_info parent_spec_keys), leaf by leaf; overrides win."""
    for key in skill.parent_spec_keys:
        if keys.node(key) is None:
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
            accepted = " or ".join(ACCEPTED_PARENTS.get(key, ("train",)))
            hints[key] = f"give --parent-job JOB_ID (a {accepted} job), or set it with --overrides"
    return hints


def _fail(record: JobRecord, message: str, code: int) -> None:
    record.status, record.finished, record.message, record.exit_code = "failure", now_iso(), message, code
