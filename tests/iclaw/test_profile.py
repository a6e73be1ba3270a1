import pytest

from iclaw.errors import ProfileError
from iclaw.profile import list_profiles, load_profile


def test_builtin_profiles_differ_in_the_documented_switches():
    v1, v2 = load_profile("v1"), load_profile("v2")
    assert (v1.loop.one_call_per_turn, v1.failure.policy, v1.memory.strategy, v1.tools.parallel) == (True, False, "truncate", False)
    assert (v2.loop.one_call_per_turn, v2.failure.policy, v2.memory.strategy, v2.tools.parallel) == (False, True, "hierarchical", True)
    assert {"v1", "v2"} <= set(list_profiles())


def test_user_profile_extends_and_dotted_overrides(isolated_home, tmp_path):
    directory = isolated_home / "config" / "profiles"
    directory.mkdir(parents=True)
    (directory / "no-parallel.yaml").write_text("extends: v2\ndescription: ablation\ntools: {parallel: false}\n")
    profile = load_profile("no-parallel", ["memory.budget_tokens=4096"])
    assert profile.name == "no-parallel" and profile.tools.parallel is False
    assert profile.failure.policy is True  # inherited from v2
    assert profile.memory.budget_tokens == 4096


def test_malformed_yaml_names_the_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nloop: {native_tools: true\n")
    with pytest.raises(ProfileError) as info:
        load_profile(str(path))
    assert str(path) in str(info.value) and "line" in str(info.value)


def test_bad_field_names_the_file_and_the_field(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("name: typo\nmemory:\n  budget_tokns: 100\n")
    with pytest.raises(ProfileError, match=r"typo.yaml: unknown profile key memory.budget_tokns \(did you mean memory.budget_tokens\?\)"):
        load_profile(str(path))
    with pytest.raises(ProfileError) as info:
        load_profile("v2", ["memory.budget_tokens=lots"])
    assert str(info.value).startswith("override memory.budget_tokens=lots: ") and "profiles" not in str(info.value)


def test_an_unknown_override_key_gets_did_you_mean_and_the_valid_keys_without_paths():
    with pytest.raises(ProfileError) as info:
        load_profile("v2", ["memory.budget_tokns=10"])
    message = str(info.value)
    assert "did you mean memory.budget_tokens?" in message
    assert "the keys of memory are: strategy, budget_tokens," in message
    assert "/" not in message and "\n" not in message and "Extra inputs" not in message
    with pytest.raises(ProfileError, match="did you mean memory"):
        load_profile("v2", ["memroy.budget_tokens=10"])
    with pytest.raises(ProfileError, match="not a section"):
        load_profile("v2", ["memory.budget_tokens.x=1"])
    with pytest.raises(ProfileError, match="did you mean v2"):
        load_profile("v22")


def test_sampling_temperature_defaults_low_and_is_overridden_by_endpoint_and_flag(isolated_home):
    from iclaw.wiring import AgentSettings, build_model

    assert load_profile("v2").sampling.temperature == 0.2
    assert build_model(AgentSettings(), load_profile("v2")).temperature == 0.2
    assert build_model(AgentSettings(), load_profile("v2", ["sampling.temperature=0.9"])).temperature == 0.9
    assert build_model(AgentSettings(temperature=0.0), load_profile("v2")).temperature == 0.0
    assert build_model(AgentSettings(), load_profile("v2", ["sampling.temperature=null"])).temperature is None


def test_unknown_profile_and_bad_override_say_what_to_do():
    with pytest.raises(ProfileError, match="known: .*v1.*v2"):
        load_profile("v9")
    with pytest.raises(ProfileError, match="section.field=value"):
        load_profile("v2", ["memory.budget_tokens"])


def test_extends_cycle_is_detected(tmp_path):
    (tmp_path / "a.yaml").write_text(f"extends: {tmp_path / 'b.yaml'}\n")
    (tmp_path / "b.yaml").write_text(f"extends: {tmp_path / 'a.yaml'}\n")
    with pytest.raises(ProfileError, match="cycle"):
        load_profile(str(tmp_path / "a.yaml"))
