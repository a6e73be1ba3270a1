"""The fixed texts the agent sends to the model: system prompts, replan and summary requests.

A leaf module: it knows no classes, only wording, so the agent, the memory and the
scripted model agree on the markers without importing each other.
"""

# Short on purpose: it is in every prompt (and every training example), and small models
# read it on every step. `iclaw data synth` writes it into its rows from here.
DEFAULT_SYSTEM_PROMPT = """You are iclaw, an agent in a sandboxed workspace; paths are relative to it.
Use tools to look things up and change files; never guess what a file says.
Independent tool calls may go together in one reply.
When done, reply with the final answer only, as plain text with no tool call."""

# Appended to the system prompt when the model has no native tool calling (profile loop.native_tools: false).
TEXT_TOOLS_HEADER = """# Tools
<tools>
{tools}
</tools>
To call tools, reply with one or more blocks, each:
<tool_call>{{"name": "<tool>", "arguments": {{...}}}}</tool_call>"""

# First line of every summary request; ScriptedModel recognises it and declines, so a
# scripted run never spends one of its scripted steps on a summary.
SUMMARY_MARKER = "[iclaw:summarize]"

SUMMARY_SYSTEM_PROMPT = SUMMARY_MARKER + """
You compress an agent's working memory. Summarise the transcript below in at most {max_words} words.
Keep every concrete fact verbatim: names, numbers, identifiers, file paths, decisions, errors and what was already tried.
Drop pleasantries and raw tool output. Write short bullet points, no preamble.{focus}"""

REPLAN_PROMPT = """Some tool calls failed and retrying them as they are will not help:
{failures}
Make a new plan before continuing. Reply with a short numbered plan (it will be kept pinned in your memory),
then continue with tool calls. If you believe a failure was temporary you may retry that call.
If the task cannot be done, reply with `GIVE UP: <reason>`."""

FORMAT_ERROR_PROMPT = """Your last reply could not be parsed: {problem}
Either call a tool with a well-formed block <tool_call>{{"name": "<tool>", "arguments": {{...}}}}</tool_call>
(valid JSON, a known tool name), or give the final answer as plain text."""

CONTINUE_PROMPT = "Continue with your plan."

GIVE_UP_PREFIX = "GIVE UP:"

# Heading of the project instructions (the workspace's AGENTS.md) in the system prompt.
AGENTS_MD_HEADING = "# Project instructions (AGENTS.md)"
