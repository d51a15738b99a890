"""`rag mcp`: the MCP server over stdio, driven by the SDK's client as an assistant would."""

from __future__ import annotations

import asyncio
import json
import os
import sys

from rag.settings import PROJECT_ROOT

QUESTION = "How can quantile regression models be aggregated?"


async def session(index: str):
    from mcp import Client, StdioServerParameters

    server = StdioServerParameters(
        command=sys.executable, args=["-m", "rag.cli", "mcp", "--index", index],
        cwd=str(PROJECT_ROOT), env={**os.environ, "RAG_LLM": "extractive"},
    )  # fmt: skip
    async with Client(server) as client:
        tools = await client.list_tools()
        stats = await client.call_tool("stats", {})
        answer = await client.call_tool("ask", {"question": QUESTION})
    return tools, stats, answer


def test_stdio_server_lists_tools_and_answers(seed_index):
    tools, stats, answer = asyncio.run(
        asyncio.wait_for(session(str(seed_index.settings.index)), 240)
    )
    assert {tool.name for tool in tools.tools} == {"search", "ask", "stats"}
    assert json.loads(stats.content[0].text)["papers"] == 273
    payload = json.loads(answer.content[0].text)
    assert payload["answered_by"] == "extractive" and not payload["abstained"]
    assert any(source["cited"] for source in payload["sources"])
