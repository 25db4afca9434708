"""`python -m runners mcp` driven over stdio by the official MCP client: tools, schemas, a whole chain, errors."""
from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from helpers import REPO
from runner_support import TRAIN_OVERRIDES
from splits import runner_split

mcp = pytest.importorskip("mcp", reason="the mcp extra is not installed")
from mcp.client.stdio import StdioServerParameters, stdio_client  # noqa: E402

pytestmark = pytest.mark.slow


def _session(jobs: Path, cwd: Path) -> Any:
    params = StdioServerParameters(command=sys.executable, args=["-m", "runners", "mcp", "--jobs-root", str(jobs)],
                                   cwd=str(cwd), env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    return stdio_client(params)


async def _call(session: Any, name: str, args: dict[str, Any], progress: list | None = None) -> Any:
    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total, message))

    return await session.call_tool(name, args, progress_callback=on_progress if progress is not None else None)


def _json(result: Any) -> dict[str, Any]:
    assert not result.isError, result.content[0].text
    return result.structuredContent or json.loads(result.content[0].text)


async def _drive(tmp: Path) -> dict[str, Any]:
    train, val = runner_split(tmp / "train", 8, seed=0), runner_split(tmp / "val", 6, seed=1)
    seen: dict[str, Any] = {}
    async with _session(tmp / "jobs", tmp) as (read, write), mcp.ClientSession(read, write) as session:
        await session.initialize()
        seen["tools"] = (await session.list_tools()).tools
        overrides = {**TRAIN_OVERRIDES, "epochs": 3}
        data = {"train_datasets": str(train), "eval_dataset": str(val)}
        seen["typo"] = await _call(session, "plan", {"action": "train", "automl_policy": "off", "data": data,
                                                     "overrides": {**overrides, "train.optim.lrr": 0.01}})
        seen["bad_type"] = await _call(session, "run", {"action": "train", "overrides": {"train.num_epochs": "x"}})
        seen["bad_tool_arg"] = await _call(session, "status", {"job": "x"})
        progress: list = []
        trained = _json(await _call(session, "run", {"action": "train", "automl_policy": "off", "data": data,
                                                     "overrides": overrides, "wait": True}, progress))
        seen["progress"], seen["train"] = progress, trained
        evaluated = _json(await _call(session, "run", {"action": "evaluate", "parent_job": trained["id"],
                                                       "checkpoint": "latest", "data": {"eval_dataset": str(val)},
                                                       "wait": True}))
        exported = _json(await _call(session, "run", {"action": "export", "parent_job": trained["id"],
                                                      "wait": True}))
        inferred = _json(await _call(session, "run", {"action": "inference", "parent_job": exported["id"],
                                                      "data": {"inference_dataset": str(val)}, "wait": True}))
        seen["chain"] = [evaluated, exported, inferred]
        seen["missing_job"] = await _call(session, "status", {"job_id": "oi-train-nope"})
        seen["keys"] = _json(await _call(session, "describe_keys", {"query": "learning rate", "action": "train"}))
        seen["list"] = _json(await _call(session, "list", {}))
        seen["logs"] = _json(await _call(session, "logs", {"job_id": trained["id"], "tail": 5}))
    return seen


def test_tools_schemas_chain_errors_and_progress_over_stdio(tmp_path):
    seen = asyncio.run(_drive(tmp_path))
    tools = {t.name: t for t in seen["tools"]}
    assert {"plan", "run", "status", "show", "list", "logs", "cancel", "describe_keys"} <= set(tools)
    for tool in tools.values():
        jsonschema.Draft202012Validator.check_schema(tool.inputSchema)
    assert tools["status"].annotations.readOnlyHint and tools["cancel"].annotations.destructiveHint
    assert not tools["run"].annotations.readOnlyHint
    overrides = tools["run"].inputSchema["properties"]["overrides"]["properties"]
    assert overrides["train.optim.lr"]["type"] == "number" and "exclusiveMinimum" in overrides["train.optim.lr"]
    assert tools["run"].inputSchema["properties"]["action"]["enum"][0] == "train"

    assert seen["typo"].isError and "train.optim.lrr" in seen["typo"].content[0].text
    assert "did you mean 'train.optim.lr'" in seen["typo"].content[0].text
    assert seen["bad_type"].isError and "overrides.train.num_epochs" in seen["bad_type"].content[0].text
    assert seen["bad_tool_arg"].isError and "job_id" in seen["bad_tool_arg"].content[0].text
    assert seen["missing_job"].isError and "oi-train-nope" in seen["missing_job"].content[0].text

    assert seen["train"]["status"] == "success"
    progress = seen["progress"]
    assert len(progress) >= 2 and progress[0][2] in ("pending", "running")       # one while it ran, ...
    assert progress[-1][:2] == (3.0, 3.0) and progress[-1][2].startswith("success: epoch 3/3")   # ... one at the end
    assert [p[0] for p in progress] == sorted(p[0] for p in progress)
    assert [job["status"] for job in seen["chain"]] == ["success"] * 3
    assert Path(seen["chain"][2]["artifacts"]["inference_csv"]).is_file()
    assert seen["keys"]["keys"][0]["key"] == "train.optim.lr" and seen["keys"]["keys"][0]["actions"] == ["train"]
    assert len(seen["list"]["jobs"]) == 4 and seen["logs"]["text"]
