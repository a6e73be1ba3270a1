"""Families about finding where things are: look around before reading, and change approach
when a path or a pattern finds nothing.

`find_file`: the question names a document, not a file ("the current port table of this
repository"). The expert lists the workspace (or globs for it) instead of guessing a path,
passes over backups and superseded copies, reads the index file when the names alone do
not say which copy is in effect (sometimes the newer-looking name is only a proposal),
then reads the right file.
`change_approach`: a first step that finds nothing (a folder that does not exist, a file
named with the wrong extension or case, a phrase the files spell differently) and a
different next step: `list_dir`, a glob, a looser pattern. Its pairs reject sending the
failing call again verbatim.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Callable

from evals.synth.episode import Call, Episode, Recipe, Style
from evals.synth.families.common import (
    SEEN_IN_EVALS, answer, call, calls, phrase, repeated, replan_note, reply, tool_reply, tools_for,
)
from evals.synth.vocab import HANDLES, NOUNS, SERVICES, TEAMS, TOPICS, pick, sample

__all__ = ["find_file", "change_approach"]

_VALUE_ONLY = ["Reply with the value only.", "Answer with just the value.", "Give only the value."]


@dataclass(frozen=True)
class _Document:
    names: list[tuple[str, str, str]]  # (what people call it, its file name stem, a word of both to glob for)
    field: str
    records: list[str]
    value: Callable[[random.Random], str]
    asks: list[str]  # the question, with {name}


_DOCUMENTS = [
    _Document([("port table", "ports", "port"), ("port assignments", "port_assignments", "port"),
               ("service registry", "registry", "registry")], "port",
              SERVICES, lambda r: str(r.randrange(3000, 9900)), ["which port is {name} assigned", "what port does {name} use"]),
    _Document([("escalation list", "escalation", "escalation"), ("on-call roster", "oncall_roster", "roster"),
               ("contact sheet", "contacts", "contact")], "email",
              TEAMS, lambda r: f"{pick(r, HANDLES)}@{pick(r, NOUNS)}.example",
              ["what is the on-call address of the {name} team", "which email reaches the {name} team when it is on call"]),
    _Document([("plan limits", "plan_limits", "limit"), ("quota sheet", "quotas", "quota")], "storage_gb",
              ["starter", "team", "business", "scale", "edu", "nonprofit"], lambda r: str(r.choice([5, 10, 20, 50, 100, 250, 500])),
              ["how many GB of storage does the {name} plan include", "what storage quota in GB comes with the {name} plan"]),
    _Document([("job schedule", "schedule", "schedule"), ("batch timetable", "timetable", "timetable")], "runs_at",
              ["backup", "reindex", "digest", "cleanup", "export", "billing-run"],
              lambda r: f"{r.randrange(0, 24):02d}:{r.choice([0, 15, 30, 45]):02d}",
              ["at what time does the {name} job run", "when does the {name} job start each night"]),
]


def _render(ext: str, field: str, values: dict[str, str], note: str | None) -> str:
    if ext == "csv":
        return f"name,{field}\n" + "".join(f"{k},{v}\n" for k, v in values.items())
    if ext == "json":
        return json.dumps({k: {field: v} for k, v in values.items()}, indent=2) + "\n"
    head = f"# {note}\n" if note else ""
    if ext == "toml":
        return head + "".join(f'[{k}]\n{field} = "{v}"\n\n' for k, v in values.items())
    return head + "".join(f"{k}:\n  {field}: {v}\n" for k, v in values.items())


def find_file(rng: random.Random, style: Style) -> Episode:
    doc = rng.choice(_DOCUMENTS)
    title, stem, word = rng.choice(doc.names)
    ext = rng.choice(["toml", "yaml", "csv", "json"])
    folder = rng.choice(["ops", "infra", "platform", "runbook", "deploy"])
    records = sample(rng, doc.records, rng.randint(3, 5))
    name = rng.choice(records)
    current = {r: doc.value(rng) for r in records}
    stale = dict(current)
    while stale[name] == current[name]:
        stale[name] = doc.value(rng)
    year = rng.randint(2019, 2023)
    files = {"LICENSE.txt": "Internal use only.\n", f"{folder}/run.sh": "#!/bin/sh\nexec ./bin/start\n"}
    indexed = rng.random() < 0.45
    if indexed:
        newer = f"{folder}/{stem}_v2.{ext}"
        older = f"{folder}/{stem}.{ext}"
        path, other = (newer, older) if rng.random() < 0.5 else (older, newer)
        why = (f"the previous version, frozen in {year}; do not use it" if other == older
               else "a proposal for next quarter and not rolled out yet")
        index = rng.choice(["OVERVIEW.md", "CONTENTS.md", "GUIDE.md", "docs/INDEX.md", "HANDBOOK.md", "ABOUT.txt"])
        files[index] = (f"# {pick(rng, NOUNS)} operations\n\nFiles for running the {pick(rng, NOUNS)} deployment.\n\n"
                        f"- `{path}` is the {title} in effect.\n- `{other}` is {why}.\n")
    else:
        path = f"{folder}/{stem}.{ext}"
        other = rng.choice([f"{folder}/{stem}.{ext}.bak", f"{folder}/archive/{stem}-{year}.{ext}",
                            f"{folder}/{stem}.old.{ext}", f"{folder}/deprecated/{stem}.{ext}"])
    files[path] = _render(ext, doc.field, current, None)
    files[other] = _render(ext, doc.field, stale, f"superseded in {year}; kept for reference" if not indexed else None)
    ask = phrase(rng, doc.asks, name=name)
    instruction = phrase(rng, [
        "According to the current {title} of this repository, {ask}? {tail}",
        "Going by the {title} that is in effect here, {ask}? {tail}",
        "This project keeps its {title} in a file somewhere. {Ask}? {tail}",
        "Check the project's authoritative {title}: {ask}? {tail}",
    ], title=title, ask=ask, Ask=ask[0].upper() + ask[1:], tail=rng.choice(_VALUE_ONLY))
    if indexed or rng.random() < 0.6:
        look = call("list_dir", path=".", depth=rng.choice([2, 3]))
    else:
        look = call("glob", pattern=f"**/*{word}*")
    read = call("read_file", path=path)
    turns = [calls(look)] + ([calls(call("read_file", path=index))] if indexed else []) + [calls(read), answer(current[name])]
    tools = tools_for(rng, ["list_dir", "read_file", look.name], ["grep", "glob"])
    guess = title.replace(" ", "_")
    grep_it = "grep" in tools and rng.random() < 0.5  # the eval transcript grepped its guess
    guessed: Call = call("grep", pattern=name, path=guess) if grep_it else call("read_file", path=guess)
    rejections = [
        tool_reply(0, "guessed_path", guessed, weight=SEEN_IN_EVALS),
        reply(0, "answer_without_looking", stale[name]),
        tool_reply(1, "read_decoy", call("read_file", path=other), weight=2.0),
        reply(len(turns) - 1, "invented_content", stale[name]),
    ]
    return Episode("find_file", instruction, Recipe(files, tools), turns, rejections, evidence=[path, current[name]])


def change_approach(rng: random.Random, style: Style) -> Episode:
    return rng.choice([_wrong_folder, _wrong_name, _loose_pattern])(rng, style)


def _facts(rng: random.Random) -> list[tuple[str, str, str, str, str]]:
    """(topic, sentence in the docs, value, question, a wrong value)."""
    hour, desk, limit = rng.randrange(0, 22), rng.randrange(2, 40), rng.choice([150, 250, 400, 750, 1200])
    year, month, day = rng.randint(2025, 2027), rng.randint(1, 12), rng.randint(1, 27)
    noun, minute = pick(rng, NOUNS), rng.choice([0, 15, 30, 45])
    return [
        ("release freeze", f"The release freeze starts on {year}-{month:02d}-{day:02d}.", f"{year}-{month:02d}-{day:02d}",
         "when does the release freeze start?", f"{year}-{month:02d}-{day + 1:02d}"),
        ("backup window", f"The backup window is {hour:02d}:00-{hour + 2:02d}:00 UTC.", f"{hour:02d}:00-{hour + 2:02d}:00 UTC",
         "what is the backup window?", f"{hour + 1:02d}:00-{hour + 3:02d}:00 UTC"),
        ("visitor badges", f"Visitor badges are handed out at desk {desk}.", str(desk),
         "at which desk are visitor badges handed out?", str(desk + 1)),
        ("expense limit", f"The expense limit without approval is {limit} EUR.", f"{limit} EUR",
         "what is the expense limit without approval?", f"{limit * 2} EUR"),
        ("guest wifi", f"The guest wifi network is called {noun}-guest.", f"{noun}-guest",
         "what is the guest wifi network called?", f"{noun}-visitors"),
        ("standup", f"The daily standup starts at {hour:02d}:{minute:02d}.", f"{hour:02d}:{minute:02d}",
         "what time does the daily standup start?", f"{hour + 1:02d}:{minute:02d}"),
    ]


def _wrong_folder(rng: random.Random, style: Style) -> Episode:
    """grep of a folder that does not exist says 'no matches'; list the workspace to find the real one."""
    real = rng.choice(["doc", "documentation", "guides", "wiki", "handbook"])
    wrong = rng.choice(["docs", "documents", "manual"])
    topic, sentence, value, question, wrong_value = rng.choice(_facts(rng))
    pages = sample(rng, NOUNS, rng.randint(3, 5))
    files = {f"{real}/{p}.md": f"# {p.capitalize()}\n\n- {pick(rng, TOPICS)}: see the team channel.\n" for p in pages}
    files[f"{real}/{pages[0]}.md"] += f"- {sentence}\n"
    files[f"{rng.choice(['src', 'app'])}/main.py"] = "print('hello')\n"
    instruction = phrase(rng, [
        "Search the {wrong}/ folder for the {topic}: {q} {tail}",
        "Somewhere in {wrong}/ there is a note on the {topic}. {Q} {tail}",
    ], wrong=wrong, topic=topic, q=question, Q=question[0].upper() + question[1:], tail=rng.choice(_VALUE_ONLY))
    first = call("grep", pattern=topic, path=wrong, ignore_case=True)
    turns = [calls(first), calls(call("list_dir", path=".")), calls(call("grep", pattern=topic, path=real, ignore_case=True)),
             answer(value)]
    tools = tools_for(rng, ["grep", "list_dir"], ["read_file", "glob"])
    rejections = [
        repeated(1, first),
        reply(1, "stopped_early", f"There is nothing about the {topic} in {wrong}/."),
        reply(1, "invented_content", wrong_value),
    ]
    return Episode("change_approach", instruction, Recipe(files, tools), turns, rejections,
                   evidence=["no matches", sentence, f"{real}/"])


def _wrong_name(rng: random.Random, style: Style) -> Episode:
    """A file asked for by a slightly wrong name: 'no such file', then look in its folder."""
    folder = rng.choice(["inventory", "catalog", "stock", "assets"])
    stem = rng.choice(["parts", "bins", "shelves", "pallets"])
    real = f"{folder}/{stem}.yaml"
    wrong = rng.choice([f"{folder}/{stem}.yml", f"{folder}/{stem.capitalize()}.yaml", f"{folder}/{stem}.yaml.txt"])
    items = {f"{pick(rng, NOUNS)}-{rng.randrange(100, 999)}": rng.randrange(0, 500) for _ in range(rng.randint(4, 7))}
    item = rng.choice(list(items))
    suppliers = "".join(f"{pick(rng, NOUNS)} supply,{pick(rng, ['NL', 'PE', 'VN', 'KE'])}\n" for _ in range(3))
    files = {real: "".join(f"{k}: {v}\n" for k, v in items.items()), f"{folder}/suppliers.csv": "name,country\n" + suppliers}
    instruction = phrase(rng, [
        "How many units of {item} does {wrong} list? Number only.",
        "Open {wrong} and tell me the count recorded for {item}. Just the number.",
    ], item=item, wrong=wrong)
    look = call("list_dir", path=folder) if rng.random() < 0.6 else call("glob", pattern=f"{folder}/{stem}.*")
    plan = replan_note(style, f"{wrong} does not exist; look in {folder}/ for the file meant.", f"Read it and report {item}.")
    first = call("read_file", path=wrong)
    turns = [calls(first), calls(look, content=plan), calls(call("read_file", path=real)), answer(str(items[item]))]
    tools = tools_for(rng, ["read_file", look.name], ["grep"])
    rejections = [
        repeated(1, first),
        reply(1, "ignored_error", str(items[item] + rng.randint(1, 40))),
        reply(1, "stopped_early", f"{wrong} does not exist, so I cannot answer."),
    ]
    return Episode("change_approach", instruction, Recipe(files, tools), turns, rejections,
                   evidence=["no such file", f"{item}: {items[item]}"])


_SETTINGS = [("retry limit", "RETRY_LIMIT", "retry.?limit"), ("connect timeout", "CONNECT_TIMEOUT_MS", "connect.?timeout"),
             ("pool size", "POOL_SIZE", "pool.?size"), ("page size", "PAGE_SIZE", "page.?size")]


def _loose_pattern(rng: random.Random, style: Style) -> Episode:
    """A phrase from the question finds nothing; the files spell it differently, so loosen the pattern."""
    folder = rng.choice(["clients", "integrations", "connectors"])
    words, key, loose = rng.choice(_SETTINGS)
    services = sample(rng, SERVICES, rng.randint(3, 5))
    values = {s: rng.randrange(2, 900) for s in services}
    files = {f"{folder}/{s}.env": f"BASE_URL=https://{s}.internal.example\n{key}={values[s]}\nLOG_FORMAT=json\n"
             for s in services}
    svc = rng.choice(services)
    instruction = phrase(rng, [
        "What is the {p} of the {svc} client? The client settings are in {folder}/. Number only.",
        "Look up the {p} configured for the {svc} client (settings under {folder}/). Reply with the number.",
    ], p=words, svc=svc, folder=folder)
    first = call("grep", pattern=words, path=folder)
    turns = [calls(first), calls(call("grep", pattern=loose, path=folder, ignore_case=True)), answer(str(values[svc]))]
    tools = tools_for(rng, ["grep"], ["read_file", "list_dir", "glob"])
    rejections = [
        repeated(1, first),
        reply(1, "stopped_early", f"No {words} is set anywhere in {folder}/."),
        reply(1, "invented_content", str(values[svc] + rng.randint(1, 9))),
    ]
    return Episode("change_approach", instruction, Recipe(files, tools), turns, rejections,
                   evidence=["no matches", f"{folder}/{svc}.env:2: {key}={values[svc]}"])
