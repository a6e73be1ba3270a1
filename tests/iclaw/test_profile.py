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
    with pytest.raises(ProfileError, match=r"typo.yaml: field memory.budget_tokns: Extra inputs"):
        load_profile(str(path))
    with pytest.raises(ProfileError, match="field memory.budget_tokens"):
        load_profile("v2", ["memory.budget_tokens=lots"])


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
