"""Benchmarks behind `iclaw bench`: parallel tool calls and long-session memory."""

from iclaw.bench.memory import run_memory_bench
from iclaw.bench.parallel import run_parallel_bench

__all__ = ["run_memory_bench", "run_parallel_bench"]
