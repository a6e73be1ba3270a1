"""`synthesize`: draw episodes, roll them out through the agent, write SFT rows and DPO pairs.

Row i uses family `families[(i // P) % F]` and profile `profiles[i % P]`, so every family
is seen under every profile in equal numbers, and a seed derived from (seed, i) — plus k
when the draw had to be redrawn k times because its rollout failed a check. Its
`meta` holds family, seed, profile and the workspace recipe, so `episode_for(meta)` draws
the same episode again and `replay` re-executes its calls. Output is JSONL, written to a
temporary file and renamed when complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
from pathlib import Path
from typing import Callable

import anyio
from iclaw.errors import ProfileError
from iclaw.profile import AgentProfile, load_profile
from pydantic import BaseModel, ConfigDict, Field, field_validator

from evals.errors import SpecError
from evals.synth.episode import Episode
from evals.synth.families import FAMILIES
from evals.synth.pairs import make_pair
from evals.synth.rollout import Conversation, RolloutError, rollout, style_of

__all__ = ["SynthOptions", "synthesize", "episode_for", "row_seed"]

_MAX_REDRAWS = 3


class SynthOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n: int = Field(ge=0)  # SFT rows
    n_pairs: int = Field(0, ge=0)  # DPO pairs (from the same rollouts, more rollouts if needed)
    seed: int = 0
    profiles: list[str] = Field(default_factory=lambda: ["v1", "v2"], min_length=1)
    families: list[str] = Field(default_factory=lambda: list(FAMILIES), min_length=1)
    jobs: int = Field(4, ge=1)  # rollouts in flight at once (they mostly wait on subprocesses)

    @field_validator("families")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = [f for f in value if f not in FAMILIES]
        if unknown:
            raise ValueError(f"unknown famil{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)}; known: {', '.join(FAMILIES)}")
        return value

    @field_validator("profiles")
    @classmethod
    def _loadable(cls, value: list[str]) -> list[str]:
        for name in value:
            try:
                load_profile(name)
            except ProfileError as exc:
                raise ValueError(f"profile {name!r}: {exc}") from exc
        return value


def row_seed(seed: int, index: int) -> int:
    """The seed of row `index`: stable across Python versions and runs (no `hash()`)."""
    return int.from_bytes(hashlib.sha256(f"synth:{seed}:{index}".encode()).digest()[:6], "big")


def episode_for(family: str, seed: int, profile: AgentProfile) -> Episode:
    return FAMILIES[family](random.Random(seed), style_of(profile))


async def _one(index: int, options: SynthOptions, profiles: dict[str, AgentProfile]) -> tuple[dict, dict | None, int]:
    """Row `index` (and its pair); a draw whose rollout fails its checks is redrawn (seed + 1, ...)."""
    names = options.profiles
    family = options.families[(index // len(names)) % len(options.families)]
    profile = profiles[names[index % len(names)]]
    for redraws in range(_MAX_REDRAWS + 1):
        seed = row_seed(options.seed, index) + redraws
        episode = episode_for(family, seed, profile)
        try:
            with tempfile.TemporaryDirectory(prefix="synth-") as tmp:
                conversation: Conversation = await rollout(episode, profile, Path(tmp))
            meta = {"family": family, "seed": seed, "profile": profile.name, "workspace": episode.recipe.to_meta()}
            pair = None
            if index < options.n_pairs:
                pair = make_pair(episode, conversation, random.Random(f"pair:{seed}"), meta)
        except RolloutError as exc:
            failure = exc
            continue
        return {"messages": conversation.messages, "tools": conversation.tools, "meta": meta}, pair, redraws
    raise RolloutError(f"{failure} (and in {_MAX_REDRAWS} redraws; is a tool broken?)")


def synthesize(
    options: SynthOptions,
    out: Path,
    pairs_out: Path | None = None,
    on_row: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Write `options.n` SFT rows to `out` (and `options.n_pairs` pairs to `pairs_out`); return counts.

    `redrawn` counts rows whose first draw failed its rollout checks and was drawn again."""
    if options.n_pairs and pairs_out is None:
        raise SpecError("n_pairs is set but no file for the pairs was given (--pairs FILE)")
    profiles = {name: load_profile(name) for name in options.profiles}
    total = max(options.n, options.n_pairs)
    targets = [(out, 0)] + ([(pairs_out, 1)] if pairs_out is not None else [])
    handles = {}
    try:
        for path, slot in targets:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            except OSError as exc:
                raise SpecError(f"cannot write {path}: {exc.strerror or exc}") from exc
            os.chmod(tmp, 0o644)  # mkstemp's 0600 would surprise whoever reads the data next
            handles[slot] = (os.fdopen(fd, "w", encoding="utf-8"), Path(tmp), path)
        redrawn = anyio.run(_run_all, options, profiles, total, handles, on_row)
        for handle, tmp, path in handles.values():
            handle.close()
            os.replace(tmp, path)
    finally:
        for handle, tmp, _ in handles.values():
            if not handle.closed:
                handle.close()
            tmp.unlink(missing_ok=True)
    return {"rows": options.n, "pairs": options.n_pairs if pairs_out is not None else 0, "redrawn": redrawn}


async def _run_all(options, profiles, total, handles, on_row) -> int:
    redrawn = 0
    for start in range(0, total, options.jobs):
        batch = list(range(start, min(total, start + options.jobs)))
        results: dict[int, tuple[dict, dict | None, int]] = {}
        failures: dict[int, RolloutError] = {}

        async def run(i: int) -> None:
            try:
                results[i] = await _one(i, options, profiles)
            except RolloutError as exc:  # kept out of the task group, so it surfaces as itself
                failures[i] = exc

        async with anyio.create_task_group() as group:
            for i in batch:
                group.start_soon(run, i)
        if failures:
            raise failures[min(failures)]
        for i in batch:  # written in index order, whatever finished first
            row, pair, redraws = results[i]
            redrawn += redraws > 0
            if i < options.n:
                handles[0][0].write(json.dumps(row, ensure_ascii=False) + "\n")
            if pair is not None and 1 in handles:
                handles[1][0].write(json.dumps(pair, ensure_ascii=False) + "\n")
            if on_row is not None:
                on_row(row["meta"]["family"])
    return redrawn
