"""Synthetic tool-use data for fine-tuning, made by running iclaw's own tools (`iclaw data`).

Parameterised task families (`families`) draw a workspace, an instruction and an expert
plan from a seeded RNG (`episode`); `rollout` replays the plan through iclaw's real agent
and tools, so system prompt, tool schemas and every observation are what iclaw sends and
sees; `dataset` writes SFT rows and `pairs` DPO pairs in the shared chat format; `stats`
summarises a file; `cli` is the command line. Imports iclaw, never torch or `llm`.
"""

from evals.synth.dataset import SynthOptions, episode_for, row_seed, synthesize
from evals.synth.episode import Episode, Recipe
from evals.synth.families import FAMILIES
from evals.synth.rollout import replay, stable

__all__ = ["FAMILIES", "Episode", "Recipe", "SynthOptions", "episode_for", "replay", "row_seed", "stable", "synthesize"]
