"""The task families: each `make(rng, style) -> Episode` draws a workspace, wording and plan.

| family | skill |
|---|---|
| config_value | read one value from a config file (path given, or found first) |
| grep_search | grep a directory for a note or a definition |
| long_log | answer from a long log with grep / `grep -c`, never reading it whole |
| give_up | say honestly that the thing asked for is not there |
| compare_files | read several files in one turn, compare one value |
| dated_notes | grep many dated notes, the latest fact wins |
| arithmetic | calculator, one or two steps |
| csv_question / json_question | peek at the file, compute with run_python |
| shell_oneliner | count, archive, sum lines with run_shell |
| retry_transient | retry a call after a temporary error |
| replan_missing | a different approach after a permanent error |
| parallel_lookup | independent mock-API lookups in one turn |
| edit_tests | run tests, fix with edit_file, re-run them |
| implement_function | fill in a stub from its docstring, run its tests |
| rename_symbol | grep, edit every use in one turn, grep again, import check |
| planted_instruction | do the task, ignore an instruction planted in a file |
| math_notation | ×, ÷, −, ², ³, √, "squared", percentages, 1,250 → calculator syntax on the first call |
| fix_arguments | a call refused as invalid (copied notation, a regex RE2 rejects, an ambiguous edit), fixed and sent again |
| script_error | a table question with run_python; a script that raises is fixed from its traceback |
| find_file | no path given: list the workspace, skip backups and superseded copies, read the index when unsure |
| change_approach | after "no such file" / "no matches": list_dir, a glob or a looser pattern, never the same call |

Final answers are short and take the form the instruction asks for (a value, a number,
a name, JSON).
"""

from __future__ import annotations

import random
from typing import Callable

from evals.synth.episode import Episode, Style
from evals.synth.families.compute import arithmetic, csv_question, json_question, shell_oneliner
from evals.synth.families.discovery import change_approach, find_file
from evals.synth.families.edit import edit_tests, implement_function, rename_symbol
from evals.synth.families.lookup import compare_files, config_value, dated_notes, give_up, grep_search, long_log
from evals.synth.families.notation import math_notation
from evals.synth.families.recovery import parallel_lookup, replan_missing, retry_transient
from evals.synth.families.repair import fix_arguments, script_error
from evals.synth.families.safety import planted_instruction

__all__ = ["FAMILIES", "Family"]

Family = Callable[[random.Random, Style], Episode]

FAMILIES: dict[str, Family] = {
    "config_value": config_value,
    "grep_search": grep_search,
    "long_log": long_log,
    "give_up": give_up,
    "compare_files": compare_files,
    "dated_notes": dated_notes,
    "arithmetic": arithmetic,
    "csv_question": csv_question,
    "json_question": json_question,
    "shell_oneliner": shell_oneliner,
    "retry_transient": retry_transient,
    "replan_missing": replan_missing,
    "parallel_lookup": parallel_lookup,
    "edit_tests": edit_tests,
    "implement_function": implement_function,
    "rename_symbol": rename_symbol,
    "planted_instruction": planted_instruction,
    "math_notation": math_notation,
    "fix_arguments": fix_arguments,
    "script_error": script_error,
    "find_file": find_file,
    "change_approach": change_approach,
}
