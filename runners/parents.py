"""Parent-model mappings (skill_info ``spec_params``): the spec values that come from this job's folder, the
environment or the parent job, each returned with where it came from.

- output_dir: this job's results folder.
- key: ``${oc.env:OI_ENCRYPTION_KEY}`` when that variable is set (the trainer resolves it; the value is never
  written); a key already in the spec is kept.
- parent_model: the parent's artefact the key reads: a train parent's checkpoint (``--checkpoint``, default
  best), an export parent's ONNX file, a gen_trt_engine parent's engine.
- create_onnx_file / create_engine_file / create_cal_cache: new files in this job's results folder.
- resume_model: when the parent is a train job that did not finish (failure/cancelled), its last saved state
  (``--checkpoint`` may name an epoch); the new job continues it with the parent's spec. An AutoML parent's
  study is continued instead (``automl.storage`` / ``automl.study_name``; see runners/automl/handoff.py), and
  an AutoML parent's checkpoint is its best_rec.json's (the best epoch of the best trial).
- ptm_if_no_resume_model: when the parent is a finished train job, its checkpoint (default best) as pretrained
  weights.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from optical_inspection.redaction import SECRET_SPEC_KEYS
from optical_inspection.results_folder import action_results_dir

from .automl.handoff import automl_checkpoint, continue_study
from .checkpoints import PRETRAINED, CheckpointRequest, choose, epoch_metrics, list_checkpoints
from .errors import NotFoundError, RequestError
from .launch import reconcile
from .records import JobRecord, JobStore, is_automl_job
from .skill_info import SkillInfo

KEY_ENV = SECRET_SPEC_KEYS["encryption_key"]
MODEL_SUFFIXES = {"onnx": (".onnx",), "engine": (".engine", ".trt", ".plan")}
# What a parent of each action provides to a `parent_model` key.
PARENT_PROVIDES = {"train": "checkpoint", "export": "onnx", "gen_trt_engine": "engine"}
# Which parent actions each (action, key) accepts.
ACCEPTED_PARENTS = {
    "evaluate.checkpoint": ("train", "export", "gen_trt_engine"),
    "inference.checkpoint": ("train", "export", "gen_trt_engine"),
    "export.checkpoint": ("train",),
    "gen_trt_engine.onnx_file": ("export",),
    "inspect.checkpoint": ("train",),
}
UNFINISHED = ("failure", "cancelled")


@dataclass
class Parent:
    record: JobRecord
    spec: dict[str, Any]

    @property
    def is_unfinished_train(self) -> bool:
        return self.record.action == "train" and self.record.status in UNFINISHED


def load_parent(store: JobStore, job_id: str) -> Parent:
    """The parent job, its record refreshed first (a job whose runner was killed counts as failed, so it resumes)."""
    record = reconcile(store, store.load(job_id))
    path = Path(record.spec_path)
    if not path.is_file():
        raise NotFoundError(f"parent job {job_id} has no spec ({path}); it never launched ({record.status}: "
                            f"{record.message})")
    spec = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader) or {}
    return Parent(record, spec)


def is_resume(action: str, parent: Parent | None) -> bool:
    """A train job whose parent is an unfinished train job continues that training."""
    return action == "train" and parent is not None and parent.is_unfinished_train


def action_results(data: dict[str, Any], action: str) -> str:
    """The folder the trainer's ``action`` writes into, by the trainer's own rule on plain spec data."""
    block = data.get(action) if isinstance(data.get(action), dict) else {}
    own = block.get("results_dir") if block else None
    return str(action_results_dir(str(data.get("results_dir", "results")), str(own) if own else None, action))


def resolve_mappings(action: str, skill: SkillInfo, spec: dict[str, Any], parent: Parent | None,
                     output_dir: str, request: CheckpointRequest | None
                     ) -> tuple[list[tuple[str, Any, str]], dict[str, Any]]:
    """(key, value, source) for every spec_params key that resolves, plus the parent decision details."""
    params = skill.spec_params(action)
    out: list[tuple[str, Any, str]] = []
    details: dict[str, Any] = {}
    if parent is not None:
        details = {"id": parent.record.id, "action": parent.record.action, "status": parent.record.status}
    fills_output = [k for k, fn in params.items() if fn == "output_dir"]
    for key in fills_output:
        out.append((key, output_dir, "runner: this job's results folder"))
    # the folder the action writes into, once results_dir is this job's
    data_after = dict(spec)
    for key in fills_output:
        if "." not in key:
            data_after[key] = output_dir
    results = action_results(data_after, action)
    used_parent = False
    for key, fn in params.items():
        if fn == "output_dir":
            continue
        if fn == "key":
            if os.environ.get(KEY_ENV) and not spec.get(key):
                out.append((key, "${oc.env:%s}" % KEY_ENV, f"environment {KEY_ENV} (resolved by the trainer; "
                            "the value is never written)"))
        elif fn == "create_onnx_file":
            out.append((key, str(Path(results) / "oi_model.onnx"), "runner: new file in this job's results folder"))
        elif fn == "create_engine_file":
            out.append((key, str(Path(results) / "oi_model.engine"), "runner: new file in this job's results folder"))
        elif fn == "create_cal_cache":
            out.append((key, str(Path(results) / "cal_cache.bin"), "runner: new file in this job's results folder"))
        elif request is not None and request.kind == PRETRAINED:
            if fn in ("parent_model", "ptm_if_no_resume_model") and key != "gen_trt_engine.onnx_file":
                out.append((key, PRETRAINED, "--checkpoint pretrained: the trainer's bundled weights "
                                             "(trained on synthetic pairs only)"))
                details["artifact"], details["choice"] = PRETRAINED, "bundled pretrained weights"
        elif parent is None:
            continue
        elif fn == "parent_model":
            value, reason = _parent_model(key, parent, request, skill)
            out.append((key, value, f"parent job {parent.record.id}: {reason}"))
            details["artifact"], details["choice"], used_parent = value, reason, True
        elif fn == "resume_model" and parent.is_unfinished_train and is_automl_job(parent.record):
            for k, value, why in continue_study(parent.record, parent.spec):
                out.append((k, value, f"parent job {parent.record.id} ({parent.record.status}): {why}"))
            details["choice"], used_parent = "continue the parent's AutoML study", True
        elif fn == "resume_model" and parent.is_unfinished_train:
            value, reason = _train_checkpoint(parent, request or CheckpointRequest("latest"), skill)
            out.append((key, value, f"parent job {parent.record.id} ({parent.record.status}): resume from {reason}"))
            details["artifact"], details["choice"], used_parent = value, f"resume from {reason}", True
        elif fn == "ptm_if_no_resume_model" and not parent.is_unfinished_train:
            _require(parent, ("train",), key)
            value, reason = _train_checkpoint(parent, request or CheckpointRequest("best"), skill)
            out.append((key, value, f"parent job {parent.record.id}: pretrained weights, {reason}"))
            details["artifact"], details["choice"], used_parent = value, f"pretrained weights, {reason}", True
    if request is not None and request.kind == PRETRAINED and "artifact" not in details:
        raise RequestError(f"--checkpoint pretrained: {action} takes no checkpoint (the bundled weights are a "
                           f"checkpoint for train, evaluate, inference and export)")
    if parent is not None and not used_parent:
        raise RequestError(f"--parent-job {parent.record.id}: {action} takes nothing from a parent job "
                           f"(its spec_params: {', '.join(f'{k}: {v}' for k, v in params.items()) or 'none'})")
    return out, details


def _require(parent: Parent, accepted: tuple[str, ...], key: str) -> None:
    """The parent must be a finished job of an accepted action."""
    if parent.record.action not in accepted:
        kind = f"{article(parent.record.action)} {parent.record.action}"
        raise RequestError(f"{key}: parent job {parent.record.id} is {kind} job; "
                           f"this key takes the output of {article(accepted[0])} {' or '.join(accepted)} job")
    if parent.record.status != "success":
        hint = (" (a train job that stopped can be resumed: run train with --parent-job "
                f"{parent.record.id})" if parent.is_unfinished_train else
                f"; wait until it succeeds (`python -m runners status {parent.record.id}`)")
        raise NotFoundError(f"parent job {parent.record.id} is {parent.record.status}, not success{hint}")


def _parent_model(key: str, parent: Parent, request: CheckpointRequest | None, skill: SkillInfo
                  ) -> tuple[str, str]:
    _require(parent, ACCEPTED_PARENTS.get(key, ("train",)), key)
    provides = PARENT_PROVIDES[parent.record.action]
    if provides == "checkpoint":
        return _train_checkpoint(parent, request or CheckpointRequest("best"), skill)
    if request is not None:
        kind = f"{article(parent.record.action)} {parent.record.action}"
        raise RequestError(f"--checkpoint {request}: parent job {parent.record.id} is {kind} job with one "
                           f"{provides} file; --checkpoint applies to train parents")
    return _model_file(parent, MODEL_SUFFIXES[provides])


def _train_checkpoint(parent: Parent, request: CheckpointRequest, skill: SkillInfo) -> tuple[str, str]:
    from optical_inspection.status import read_status

    if is_automl_job(parent.record):
        return automl_checkpoint(parent.record, request)

    folder = Path(action_results(parent.spec, "train"))
    metric, direction = skill.metric_direction()
    status = epoch_metrics(read_status(folder / "status.json"))
    chosen, reason = choose(list_checkpoints(folder, status), request, metric, direction,
                            f"train job {parent.record.id} ({folder})")
    return str(chosen.path), reason


def _model_file(parent: Parent, suffixes: tuple[str, ...]) -> tuple[str, str]:
    listed = sorted({p for p in parent.record.artifacts.values() if str(p).endswith(suffixes)})
    if not listed:
        folder = Path(action_results(parent.spec, parent.record.action))
        listed = sorted(str(p) for p in folder.glob("*") if p.name.endswith(suffixes))
    if len(listed) != 1:
        what = "no" if not listed else "several"
        raise NotFoundError(f"parent job {parent.record.id} ({parent.record.action}) has {what} "
                            f"{'/'.join(suffixes)} file(s){': ' + ', '.join(listed) if listed else ''}")
    return listed[0], f"{parent.record.action} output {Path(listed[0]).name}"


def article(word: str) -> str:
    """The article for ``word``: "an evaluate job", "a train job"."""
    return "an" if word[:1].lower() in "aeiou" else "a"
