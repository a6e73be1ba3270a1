"""A small MCP server the MCP tests start: `python mcp_demo_server.py [--http PORT] [--bad-schema]`.

Tools: `lookup` (read-only, async, 0.3 s), `meet` (read-only, returns once a second call
is running too), `add_note` (writes, not destructive, 0.2 s),
`delete_note` (destructive), `nap` (sleeps as long as asked) and `crash` (the process exits).
Each of the timed tools returns when it started and ended, so a test can see overlap
without measuring a duration.
"""

import os
import sys
import time

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

server = MCPServer("demo", log_level="WARNING")
NOTES: dict[str, str] = {}
MEETING = 0


def _span(started: float) -> str:
    return f"start={started:.6f} end={time.time():.6f}"


@server.tool(annotations=ToolAnnotations(readOnlyHint=True))
async def lookup(key: str) -> str:
    """Look a key up in the demo store."""
    started = time.time()
    await anyio.sleep(0.3)
    return f"{key} -> {key.upper()} {_span(started)}"


@server.tool(annotations=ToolAnnotations(readOnlyHint=True))
async def meet(key: str) -> str:
    """Wait (up to 20 s) until another call of meet is running too: "met" proves two calls overlapped."""
    global MEETING
    MEETING += 1
    try:
        with anyio.move_on_after(20):
            while MEETING < 2:
                await anyio.sleep(0.01)
            return f"{key} met"
        return f"{key} alone"
    finally:
        await anyio.sleep(0.05)  # stay a moment, so a partner arriving now still finds this call
        MEETING -= 1


@server.tool(annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=False))
async def add_note(name: str, text: str) -> str:
    """Add a note."""
    started = time.time()
    await anyio.sleep(0.2)
    NOTES[name] = text
    return f"added {name} {_span(started)}"


@server.tool(annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=True))
def delete_note(name: str) -> str:
    """Delete a note for good."""
    NOTES.pop(name, None)
    return f"deleted {name}"


@server.tool()
async def nap(seconds: float) -> str:
    """Sleep."""
    await anyio.sleep(seconds)
    return "rested"


@server.tool()
def crash() -> str:
    """Exit the server process at once."""
    os._exit(3)


if __name__ == "__main__":
    if "--bad-schema" in sys.argv:
        server._tool_manager.get_tool("lookup").parameters = {"type": "object", "properties": {"key": {"type": "strnig"}}}
    if "--http" in sys.argv:
        server.run("streamable-http", port=int(sys.argv[sys.argv.index("--http") + 1]))
    else:
        server.run()
