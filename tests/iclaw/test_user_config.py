import pytest

from iclaw.config import load_user_config, resolve_endpoint
from iclaw.errors import ProfileError


def _write(isolated_home, text):
    path = isolated_home / "config" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_endpoints_default_and_flag_overrides(isolated_home, monkeypatch):
    _write(isolated_home, (
        "default: local\n"
        "endpoints:\n"
        "  local: {base_url: 'http://127.0.0.1:8000/v1', model: smol}\n"
        "  cloud: {base_url: 'https://api.example.com/v1', model: big, api_key_env: TEST_ICLAW_KEY}\n"
    ))
    config = load_user_config()
    assert resolve_endpoint(config).model == "smol"
    assert resolve_endpoint(config, model="other").model == "other"
    cloud = resolve_endpoint(config, "cloud")
    with pytest.raises(ProfileError, match="TEST_ICLAW_KEY"):
        cloud.api_key()
    monkeypatch.setenv("TEST_ICLAW_KEY", "sk-1")
    assert cloud.api_key() == "sk-1"
    with pytest.raises(ProfileError, match="unknown endpoint 'nope'.*local, cloud"):
        resolve_endpoint(config, "nope")


def test_no_config_file_means_local_defaults():
    endpoint = resolve_endpoint(load_user_config(), base_url="http://10.0.0.2:9000/v1")
    assert endpoint.base_url == "http://10.0.0.2:9000/v1"


def test_malformed_config_names_file_and_field(isolated_home):
    path = _write(isolated_home, "endpoints:\n  local: {base_url: 1, modle: x}\n")
    with pytest.raises(ProfileError) as info:
        load_user_config()
    assert str(path) in str(info.value) and "field endpoints.local" in str(info.value)


def test_temperature_flag_overrides_the_endpoint_and_replies_are_capped(isolated_home):
    from iclaw.wiring import AgentSettings

    _write(isolated_home, "default: local\nendpoints:\n  local: {model: smol, temperature: 0.7}\n")
    assert AgentSettings().endpoint.temperature == 0.7
    settings = AgentSettings(temperature=0.0)
    assert settings.endpoint.temperature == 0.0 and settings.endpoint.model == "smol"
    assert settings.endpoint.max_tokens == 1024  # a model that never stops cannot fill the context
