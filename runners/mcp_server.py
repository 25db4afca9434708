"""`python -m runners mcp [--jobs-root DIR]`: the runner's verbs as MCP tools over stdio (official `mcp` SDK).

Tools: plan, run, status, show, list, logs, cancel and describe_keys. Their input schemas are derived from what the
runner already reads, never typed by hand: the actions and data sources from ``references/skill_info.yaml``, the
override keys (with type, enum and bounds) from the config key index. ``run``
starts the job in its own process and returns its record at once, or with ``wait`` follows it to the end and sends
progress notifications (epochs, or AutoML trials); a failing job is a record with ``status: failure``, never a
crash of the server. A bad argument is a tool error naming the key.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path
from typing import Any, Callable

import jsonschema

from optical_inspection import strict_json
from optical_inspection.config.key_schema import action_property
from optical_inspection.config.walk import action_index
from optical_inspection.redaction import redact

from . import api
from .cli import record_summary, tail_lines
from .errors import RunnerError
from .skill_info import SkillInfo, load_skill_info

_KEPT = ("type", "enum", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "items", "anyOf",
         "additionalProperties", "default", "minItems", "maxItems")
_POLL_S = 1.0


def _leaf_schema(node: dict[str, Any]) -> dict[str, Any]:
    """A spec key's schema for a tool argument: its type, enum, bounds and default (descriptions stay in
    describe_keys, so the tool list stays small)."""
    kept: dict[str, Any] = {}
    for key in _KEPT:
        if key in node:
            value = node[key]
            if key in ("items", "additionalProperties") and isinstance(value, dict):
                value = _leaf_schema(value)
            elif key == "anyOf":
                value = [_leaf_schema(alt) for alt in value]
            kept[key] = value
    return kept


class ToolKeys:
    """Every spec key of every action (from the config key index), for tool schemas and describe_keys."""

    def __init__(self, skill: SkillInfo) -> None:
        self.skill = skill
        self.nodes: dict[str, dict[str, Any]] = {}
        self.actions: dict[str, list[str]] = {}
        for action in skill.actions:
            for key in action_index(action):
                node = {"type": "object"} if key.section is not None else action_property(action, key)
                self.nodes.setdefault(key.path, node)
                self.actions.setdefault(key.path, []).append(action)

    def overrides_schema(self) -> dict[str, Any]:
        props = {key: _leaf_schema(node) for key, node in sorted(self.nodes.items())}
        for name, targets in sorted(self.skill.shorthand_keys.items()):
            first = targets if isinstance(targets, str) else targets[0]
            props[name] = _leaf_schema(self.nodes.get(first, {}))
        return {"type": "object", "properties": props, "additionalProperties": False,
                "description": "Spec overrides: dotted spec keys or shorthand keys (dotted keys win). Use "
                               "describe_keys to find a key."}

    def search(self, query: str, action: str | None, limit: int) -> list[dict[str, Any]]:
        words = [w.lower() for w in query.split()]
        found = []
        for key, node in sorted(self.nodes.items()):
            if action and action not in self.actions[key]:
                continue
            text = f"{key} {node.get('description', '')}".lower()
            if all(w in text for w in words):
                entry = {"key": key, "actions": self.actions[key], "type": node.get("type"),
                         "default": node.get("default"), "description": node.get("description", "")}
                entry.update({k: node[k] for k in ("enum", "minimum", "maximum", "exclusiveMinimum",
                                                    "exclusiveMaximum") if k in node})
                found.append(entry)
        return found[:limit]


def tool_definitions(skill: SkillInfo, index: ToolKeys) -> list[Any]:
    from mcp import types

    sources = sorted({name for action in skill.actions for name in skill.data_sources(action)})
    location = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]}
    job = {"job_id": {"type": "string", "description": "a job id from run or list"}}
    request = {
        "action": {"type": "string", "enum": list(skill.actions)},
        "request": {"type": "string", "description": "the user's words (read for AutoML on/off phrases)"},
        "automl_policy": {"type": "string", "enum": ["on", "off"]},
        "overrides": index.overrides_schema(),
        "data": {"type": "object", "properties": {name: location for name in sources}, "additionalProperties": False,
                 "description": "data source -> split folder or s3:// URI (dataset.csv + images/ or images.tar.gz)"},
        "parent_job": {"type": "string", "description": "job id whose artefacts this job uses"},
        "checkpoint": {"type": "string", "description": "best | latest | epoch=N (N counts epochs from 1)"},
        "spec_file": {"type": "string", "description": "a spec YAML (yours or TAO's) as the base instead of the "
                                                       "template; replaced values come back as warnings"},
    }

    def tool(name: str, text: str, props: dict[str, Any], required: list[str], read_only: bool,
             destructive: bool = False) -> Any:
        return types.Tool(name=name, description=text,
                          inputSchema={"type": "object", "properties": props, "required": required,
                                       "additionalProperties": False},
                          annotations=types.ToolAnnotations(readOnlyHint=read_only, destructiveHint=destructive,
                                                            idempotentHint=read_only, openWorldHint=False))

    return [
        tool("plan", "Resolve a job (spec, data, parent artefacts, AutoML policy) without launching or writing "
             "anything; returns every decision with its source.", request, ["action"], True),
        tool("run", "Plan, record and start a job. Returns the job record at once (status pending/running) unless "
             "wait is true; then it follows the job to the end with progress notifications.",
             {**request, "wait": {"type": "boolean", "default": False}}, ["action"], False),
        tool("status", "A job's summary: status, times, exit code, message, metrics.", job, ["job_id"], True),
        tool("show", "A job's full record: spec, decisions with sources, metrics, artefacts, log path.", job,
             ["job_id"], True),
        tool("list", "Every job under the jobs root, optionally of one status or action.",
             {"status": {"type": "string", "enum": ["pending", "running", "success", "failure", "cancelled"]},
              "action": {"type": "string", "enum": list(skill.actions)}}, [], True),
        tool("logs", "The last lines of a job's log.",
             {**job, "tail": {"type": "integer", "minimum": 0, "default": 200, "description": "0: all"}},
             ["job_id"], True),
        tool("cancel", "Stop a running job (its trainer and, for AutoML, its trials).", job, ["job_id"], False,
             destructive=True),
        tool("describe_keys", "Search the spec keys by name or words: type, default, bounds, description and the "
             "actions that read each key.",
             {"query": {"type": "string", "minLength": 1}, "action": {"type": "string", "enum": list(skill.actions)},
              "limit": {"type": "integer", "minimum": 1, "maximum": 200, "default": 25}}, ["query"], True),
    ]


def _check(arguments: dict[str, Any], schema: dict[str, Any]) -> None:
    """Validate tool arguments; unknown override keys are left to the runner, whose message suggests the key."""
    problems = []
    for error in jsonschema.Draft202012Validator(schema).iter_errors(arguments):
        where = ".".join(str(p) for p in error.absolute_path) or "arguments"
        if where == "overrides" and error.validator == "additionalProperties":
            continue
        problems.append(f"{where}: {error.message}")
    if problems:
        raise ValueError("; ".join(sorted(problems)))


def _progress(record: Any) -> tuple[float, float | None, str]:
    """(done, total, message) of a job: trained epochs from its status.json records (TAO's 0-based epoch and
    max_epoch), with the trainer's ETA."""
    from optical_inspection.status import read_status

    folder = Path(record.decisions.get("results_folder", record.results_dir))
    records = read_status(folder / "status.json")
    epochs = [r for r in records if isinstance(r.get("epoch"), int) and isinstance(r.get("max_epoch"), int)]
    if not epochs:
        return 0.0, None, record.status
    last = epochs[-1]
    done, total = last["epoch"] + 1, last["max_epoch"] + 1
    return float(done), float(total), f"{record.status}: epoch {done}/{total}, eta {last.get('eta', '?')}"


class ToolServer:
    """The runner verbs behind the MCP tools, over one jobs root."""

    def __init__(self, jobs_root: str) -> None:
        self.jobs_root = jobs_root
        self.skill = load_skill_info()
        self.index = ToolKeys(self.skill)
        self.tools = {t.name: t for t in tool_definitions(self.skill, self.index)}

    def _request(self, args: dict[str, Any]) -> dict[str, Any]:
        return {k: args.get(k) for k in ("request", "automl_policy", "overrides", "data", "parent_job",
                                          "checkpoint", "spec_file")}

    async def call(self, name: str, args: dict[str, Any], report: Callable[[float, float | None, str], Any]
                   ) -> dict[str, Any]:
        if name not in self.tools:
            raise ValueError(f"unknown tool '{name}'; tools: {', '.join(self.tools)}")
        _check(args, self.tools[name].inputSchema)
        root = self.jobs_root
        if name == "plan":
            plan = await asyncio.to_thread(api.plan_job, args["action"], jobs_root=root, **self._request(args))
            return plan.as_dict()
        if name == "run":
            record = await asyncio.to_thread(api.run_job, args["action"], jobs_root=root, detach=True,
                                             **self._request(args))
            if args.get("wait"):
                record = await self._follow(record.id, report)
            return record.as_dict()
        if name == "describe_keys":
            found = self.index.search(args["query"], args.get("action"), args.get("limit", 25))
            return {"query": args["query"], "keys": found}
        if name == "list":
            jobs = await asyncio.to_thread(api.list_jobs, root)
            return {"jobs": [record_summary(r.as_dict()) for r in jobs
                             if (not args.get("status") or r.status == args["status"])
                             and (not args.get("action") or r.action == args["action"])]}
        if name == "cancel":
            return record_summary((await asyncio.to_thread(api.cancel_job, args["job_id"], root)).as_dict())
        record = await asyncio.to_thread(api.job_status, args["job_id"], root)
        if name == "status":
            return record_summary(record.as_dict())
        if name == "show":
            return record.as_dict()
        return {"id": record.id, "status": record.status, "log_path": record.log_path,
                "text": tail_lines(Path(record.log_path), args.get("tail", 200))}

    async def _follow(self, job_id: str, report: Callable[[float, float | None, str], Any]) -> Any:
        from .records import TERMINAL

        last = None
        while True:
            record = await asyncio.to_thread(api.job_status, job_id, self.jobs_root)
            progress = _progress(record)
            if progress != last:
                await report(*progress)
                last = progress
            if record.status in TERMINAL:
                return record
            await asyncio.sleep(_POLL_S)



def build_server(tools: ToolServer) -> Any:
    from mcp import types
    from mcp.server.lowlevel import Server

    server: Any = Server("optical-inspection")

    @server.list_tools()
    async def list_tools() -> list[types.Tool]:
        return list(tools.tools.values())

    @server.call_tool(validate_input=False)  # validated by ToolServer.call, with the key named in each message
    async def call_tool(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        ctx = server.request_context
        token = ctx.meta.progressToken if ctx.meta is not None else None

        async def report(done: float, total: float | None, message: str) -> None:
            if token is not None:
                await ctx.session.send_progress_notification(token, done, total=total, message=message)

        try:
            result = await tools.call(name, arguments or {}, report)
        except RunnerError as exc:
            raise ValueError(f"{exc} (exit code {exc.exit_code} in the CLI)") from None
        # strict JSON (no NaN/Infinity) with every registered secret value redacted, as the CLI prints it
        return json.loads(redact(strict_json.dumps(result, default=str)))

    return server


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m runners mcp", description=__doc__.splitlines()[0])
    parser.add_argument("--jobs-root", default=os.environ.get("OI_JOBS_ROOT", "oi_jobs"))
    args = parser.parse_args(argv)
    from mcp.server.stdio import stdio_server

    server = build_server(ToolServer(args.jobs_root))

    async def serve() -> None:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    asyncio.run(serve())
    return 0
