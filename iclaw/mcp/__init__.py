"""Model Context Protocol: other servers' tools in iclaw, and iclaw's sandboxed tools for other clients.

- `iclaw.mcp.config` — where servers are declared (`~/.config/iclaw/config.yaml`,
  `.iclaw/mcp.yaml`) and what a declaration says;
- `iclaw.mcp.hub` — `McpHub`, the session's connections (stdio and streamable HTTP);
- `iclaw.mcp.tools` — one MCP tool as an iclaw `Tool` (`server.tool`);
- `iclaw.mcp.server` — `iclaw mcp serve`: the built-in tools as an MCP server;
- `iclaw.mcp.commands` — the `iclaw mcp` commands.

The SDK (`mcp`) is imported only when a server is connected or served.
"""

from iclaw.mcp.config import McpServerSpec, ServerEntry, load_servers, parse_servers
from iclaw.mcp.hub import McpHub, ServerState, open_hub

__all__ = ["McpHub", "McpServerSpec", "ServerEntry", "ServerState", "load_servers", "open_hub", "parse_servers"]
