"""Fixtures for the eval-harness tests (helpers live in evals_testkit.py)."""

import pytest

from evals.versions import parse_agent_specs


@pytest.fixture
def v1():
    return parse_agent_specs(["v1"])[0]


@pytest.fixture
def v2():
    return parse_agent_specs(["v2"])[0]
