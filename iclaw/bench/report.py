"""Rich tables for the `iclaw bench` results (the `--json` output is the result dict itself)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

__all__ = ["print_parallel", "print_memory"]


def print_parallel(result: dict, console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=f"{result['calls']} tool calls of {result['latency_s']:g}s in one turn (median of {result['repeats']})")
    for column in ("profile", "wall s", "steps", "tool calls", "max in flight", "status"):
        table.add_column(column, justify="right" if column != "profile" else "left")
    for name, row in result["profiles"].items():
        table.add_row(name, f"{row['wall_s']:.3f}", str(row["steps"]), str(row["tool_calls"]), str(row["max_in_flight"]),
                      row["status"] + ("" if row["complete"] else " (incomplete)"))
    console.print(table)
    console.print(f"speed-up: {result['speedup']}x")


def print_memory(result: dict, console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=f"{result['turns']}-turn scripted session, budget {result['budget']:,} tokens, {result['facts']} planted facts")
    for column in ("profile", "peak prompt", "within budget", "facts kept", "user / tool", "compactions", "wall s"):
        table.add_column(column, justify="right" if column != "profile" else "left")
    for name, row in result["profiles"].items():
        stages = str(sum(row["compactions"].values()))  # per stage in the --json output
        table.add_row(
            name,
            f"{row['peak_prompt_tokens']:,}",
            "yes" if row["within_budget"] else "NO",
            f"{row['facts_retained']}/{row['facts_total']}",
            f"{row['retained_user_facts']} / {row['retained_tool_facts']}",
            stages,
            f"{row['wall_s']:.2f}",
        )
    console.print(table)
