"""Tools: the registry, the built-ins, mock tools and fault injection, the sandbox and permissions."""

from iclaw.tools.builtin import BUILTIN_TOOLS, builtin_registry
from iclaw.tools.faults import FaultSpec, inject_faults
from iclaw.tools.mock import MockToolSpec, add_mock_tools
from iclaw.tools.permissions import MODES, Approval, Permissions, Verdict
from iclaw.tools.policy import ResourceLimits, SandboxPolicy
from iclaw.tools.registry import ToolRegistry
from iclaw.tools.tool import Tool, ToolResult
from iclaw.tools.workspace import Workspace

__all__ = [
    "BUILTIN_TOOLS",
    "MODES",
    "Approval",
    "FaultSpec",
    "MockToolSpec",
    "Permissions",
    "Verdict",
    "ResourceLimits",
    "SandboxPolicy",
    "Tool",
    "ToolRegistry",
    "ToolResult",
    "Workspace",
    "add_mock_tools",
    "builtin_registry",
    "inject_faults",
]
