#!/usr/bin/env python3
"""A real MCP client, the Python `mcp` SDK from PyPI, driven by netmon's Rust tests.

It connects over stdio (spawning the server) or Streamable HTTP, runs the plan given as JSON,
and prints one JSON event per line on stdout. It asserts nothing: the Rust test reads the
events and checks them against ground truth it measured itself.

Plan steps (each an object with "op"):
  list_tools                      -> {"event": "tools", "tools": [...]}
  call {tool, args, label?}       -> {"event": "progress", ...}* then {"event": "result", ...}
  cancel {tool, args, after}      -> the call, cancelled after `after` progress notifications
  disconnect {tool, args, after}  -> the process exits abruptly after `after` notifications
  concurrent {calls: [...]}       -> all calls at once, a "result" event for each
  wait                            -> {"event": "waiting"}, then blocks until a line on stdin
  set_level {level}               -> {"event": "level_set"}
  list_prompts                    -> {"event": "prompts", "prompts": [...]}
  get_prompt {name, args}         -> {"event": "prompt", "messages": [...]} or an exception
  complete {prompt, argument, value, context?}  -> {"event": "completion", "values": [...]}
  capabilities                    -> {"event": "capabilities", "capabilities": {...}}
Log messages the server sends (notifications/message) are {"event": "log", ...} whenever they
arrive.
"""

import argparse
import json
import os
import sys
import time

import anyio
from mcp import ClientSession, StdioServerParameters, types
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def emit(**event):
    print(json.dumps(event), flush=True)


def dump(model):
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def result_event(label, result):
    return dict(
        event="result",
        label=label,
        is_error=bool(result.is_error),
        structured=result.structured_content,
        text=[c.text for c in result.content if getattr(c, "type", "") == "text"],
    )


async def call(session, step, label, on_progress=None):
    async def progress(done, total, message):
        emit(event="progress", label=label, progress=done, total=total, message=message)
        if on_progress is not None:
            await on_progress()

    start = time.monotonic()
    try:
        result = await session.call_tool(step["tool"], step.get("args"), progress_callback=progress)
        emit(**result_event(label, result), elapsed=time.monotonic() - start)
    except Exception as e:  # a protocol error is an event for the test to judge
        emit(event="exception", label=label, type=type(e).__name__, message=str(e))


async def run_plan(session, plan):
    for i, step in enumerate(plan):
        op = step["op"]
        label = step.get("label", str(i))
        if op == "list_tools":
            tools = await session.list_tools()
            emit(event="tools", tools=[dump(t) for t in tools.tools])
        elif op == "call":
            await call(session, step, label)
        elif op in ("cancel", "disconnect"):
            seen = 0
            with anyio.CancelScope() as scope:

                async def counted():
                    nonlocal seen
                    seen += 1
                    if seen >= step["after"]:
                        if op == "disconnect":
                            emit(event="disconnecting", label=label)
                            os._exit(0)
                        scope.cancel()

                await call(session, step, label, counted)
            if scope.cancelled_caught:
                emit(event="cancelled", label=label, after=seen)
        elif op == "concurrent":
            async with anyio.create_task_group() as tg:
                for j, c in enumerate(step["calls"]):
                    tg.start_soon(call, session, c, c.get("label", f"{label}.{j}"))
        elif op == "wait":
            emit(event="waiting", label=label)
            await anyio.to_thread.run_sync(sys.stdin.readline)
        elif op == "set_level":
            await session.set_logging_level(step["level"])
            emit(event="level_set", label=label)
        elif op == "list_prompts":
            prompts = await session.list_prompts()
            emit(event="prompts", label=label, prompts=[dump(p) for p in prompts.prompts])
        elif op == "get_prompt":
            try:
                r = await session.get_prompt(step["name"], step.get("args"))
                emit(event="prompt", label=label, description=r.description,
                     messages=[dump(m) for m in r.messages])
            except Exception as e:
                emit(event="exception", label=label, type=type(e).__name__, message=str(e))
        elif op == "complete":
            ref = types.PromptReference(type="ref/prompt", name=step["prompt"])
            r = await session.complete(ref, {"name": step["argument"], "value": step["value"]},
                                       step.get("context"))
            emit(event="completion", label=label, values=r.completion.values,
                 total=r.completion.total, has_more=r.completion.has_more)
        elif op == "capabilities":
            caps = session.server_capabilities
            emit(event="capabilities", label=label, capabilities=dump(caps) if caps else None)
        else:
            raise SystemExit(f"unknown op {op!r}")


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--stdio", help="server command line, as a JSON list")
    p.add_argument("--url", help="Streamable HTTP endpoint")
    p.add_argument("--token", help="bearer token for HTTP")
    p.add_argument("--handshake", choices=["initialize", "discover"], default="initialize")
    p.add_argument("--plan", required=True, help="JSON list of steps")
    a = p.parse_args()
    plan = json.loads(a.plan)

    async def on_log(params):
        emit(event="log", level=params.level, logger=params.logger, data=params.data)

    async def session_over(read, write):
        async with ClientSession(read, write, logging_callback=on_log) as session:
            if a.handshake == "initialize":
                r = await session.initialize()
                info = dict(instructions=r.instructions, server=dump(r.server_info))
            else:
                r = await session.discover()
                info = dict(instructions=getattr(r, "instructions", None))
            emit(event="connected", protocol_version=session.protocol_version, **info)
            await run_plan(session, plan)
            emit(event="done")

    if a.stdio:
        cmd = json.loads(a.stdio)
        params = StdioServerParameters(command=cmd[0], args=cmd[1:], env=dict(os.environ))
        async with stdio_client(params) as (read, write):
            await session_over(read, write)
    else:
        headers = {"Authorization": f"Bearer {a.token}"} if a.token else None
        async with create_mcp_http_client(headers=headers) as http:
            async with streamable_http_client(a.url, http_client=http) as streams:
                await session_over(streams[0], streams[1])


anyio.run(main)
