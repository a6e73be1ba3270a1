import httpx
import pytest

from iclaw.tools import Permissions, builtin_registry


def _registry(workspace, handler, hosts):
    return builtin_registry(workspace, Permissions(), http_allow_hosts=hosts, http_transport=httpx.MockTransport(handler))


def test_http_get_is_off_unless_enabled(workspace):
    assert "http_get" not in builtin_registry(workspace).names()


@pytest.mark.anyio
async def test_allow_list_is_checked_on_every_redirect_hop(workspace):
    def handler(request):
        if request.url.path == "/hop":
            return httpx.Response(302, headers={"location": "https://evil.test/steal"})
        return httpx.Response(200, text="hello docs", headers={"content-type": "text/plain"})

    registry = _registry(workspace, handler, ["docs.test", "*.example.org"])
    ok = await registry.call("http_get", {"url": "https://docs.test/page"})
    assert ok.ok and "hello docs" in ok.content and ok.content.startswith("HTTP 200")
    assert (await registry.call("http_get", {"url": "https://api.example.org/x"})).ok
    blocked = await registry.call("http_get", {"url": "https://other.test/"})
    assert blocked.error_kind == "denied" and "allow-list" in blocked.content
    redirected = await registry.call("http_get", {"url": "https://docs.test/hop"})
    assert redirected.error_kind == "denied" and "evil.test" in redirected.content


@pytest.mark.anyio
async def test_server_errors_are_transient(workspace):
    registry = _registry(workspace, lambda request: httpx.Response(503, text="busy"), ["docs.test"])
    result = await registry.call("http_get", {"url": "https://docs.test/"})
    assert result.error_kind == "transient"
