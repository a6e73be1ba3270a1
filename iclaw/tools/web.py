"""`http_get`: fetch a URL, only from hosts on the allow-list, only when enabled.

Off by default: `builtin_registry` adds it only when hosts are allowed. Redirects are
followed by hand so each hop is checked against the allow-list too. Network failures
and 5xx answers are transient (the failure policy may retry); other 4xx are permanent.
"""

from __future__ import annotations

import fnmatch
from urllib.parse import urljoin, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field

from iclaw.errors import SandboxViolation, ToolError
from iclaw.tools.permissions import Permissions
from iclaw.tools.process import truncate_middle
from iclaw.tools.tool import Tool

__all__ = ["http_get_tool"]

_MAX_REDIRECTS = 5


class HttpGetArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(description="http(s) URL on an allowed host.")


def _check_host(url: str, allow_hosts: list[str]) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ToolError(f"{url!r} is not an http(s) URL", "invalid_arguments")
    if not any(fnmatch.fnmatchcase(parts.hostname, pattern) for pattern in allow_hosts):
        allowed = ", ".join(allow_hosts) or "(none)"
        raise SandboxViolation(f"host {parts.hostname!r} is not on the allow-list ({allowed}); add it to tools.http_allow_hosts")


def http_get_tool(
    permissions: Permissions,
    allow_hosts: list[str],
    timeout_s: float = 20.0,
    max_chars: int = 20_000,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Tool:
    async def http_get(args: HttpGetArgs) -> str:
        url = args.url
        _check_host(url, allow_hosts)
        await permissions.check("http_get", "net", url, f"GET {url}")
        async with httpx.AsyncClient(transport=transport, timeout=timeout_s, follow_redirects=False) as client:
            for _ in range(_MAX_REDIRECTS + 1):
                response = await client.get(url)
                if response.is_redirect and "location" in response.headers:
                    url = urljoin(url, response.headers["location"])
                    _check_host(url, allow_hosts)
                    continue
                break
            else:
                raise ToolError(f"more than {_MAX_REDIRECTS} redirects from {args.url}")
        body = truncate_middle(response.text, max_chars)
        if response.status_code >= 500:
            raise ToolError(f"HTTP {response.status_code} from {url}: {body[:500]}", "transient")
        if response.status_code >= 400:
            raise ToolError(f"HTTP {response.status_code} from {url}: {body[:500]}")
        return f"HTTP {response.status_code} {response.headers.get('content-type', '')}\n\n{body}"

    return Tool(
        "http_get",
        f"Fetch a web page or API response by URL (allowed hosts: {', '.join(allow_hosts) or 'none'}).",
        http_get,
        HttpGetArgs,
    )
