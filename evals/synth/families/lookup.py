"""Families that find facts: a config value, a grep hit, a fact in a long log, an honest "not there",
one value compared across files read in one turn, the latest of many dated notes.

Each family is `make(rng, style) -> Episode`; the workspace, the wording and the plan all
come from `rng`.
"""

from __future__ import annotations

import random

from evals.synth.episode import Episode, Recipe, Style
from evals.synth.families.common import (
    SEEN_IN_EVALS, answer, call, calls, phrase, repeated, reply, tool_reply, tools_for,
)
from evals.synth.vocab import FIRST_NAMES, HANDLES, NOUNS, SERVICES, TOPICS, pick, sample

__all__ = ["config_value", "grep_search", "long_log", "give_up", "compare_files", "dated_notes"]

_SECTIONS = ["server", "cache", "queue", "storage", "limits", "logging", "auth", "metrics"]
_KEYS = {
    "listen_port": lambda r: str(r.randrange(2000, 9900)),
    "worker_count": lambda r: str(r.randrange(2, 33)),
    "timeout_seconds": lambda r: str(r.choice([5, 10, 15, 20, 45, 90, 120])),
    "retry_limit": lambda r: str(r.randrange(1, 9)),
    "cache_ttl": lambda r: str(r.choice([30, 60, 300, 600, 900, 3600])),
    "batch_size": lambda r: str(r.choice([16, 32, 50, 64, 100, 250, 500])),
    "log_level": lambda r: r.choice(["debug", "info", "warning", "error"]),
    "queue_depth": lambda r: str(r.randrange(10, 5000)),
    "pool_size": lambda r: str(r.randrange(2, 65)),
    "flush_interval": lambda r: f"{r.randrange(1, 60)}s",
    "region": lambda r: r.choice(["eu-west", "us-east", "ap-south", "sa-east"]),
    "max_upload_mb": lambda r: str(r.choice([8, 16, 25, 50, 100, 200])),
}
_VALUE_ONLY = ["Reply with the value only.", "Answer with just the value.", "Give only the value."]


def _config(rng: random.Random, fmt: str) -> tuple[str, dict[str, dict[str, str]]]:
    """A config file text and its effective values {section: {key: value}}."""
    sections = {s: {} for s in sample(rng, _SECTIONS, rng.randint(2, 4))}
    for values in sections.values():
        for key in sample(rng, list(_KEYS), rng.randint(2, 4)):
            values[key] = _KEYS[key](rng)
    lines: list[str] = []
    for section, values in sections.items():
        lines.append(f"[{section}]" if fmt == "ini" else f"{section}:")
        for key, value in values.items():
            indent = "" if fmt == "ini" else "  "
            sep = " = " if fmt == "ini" else ": "
            if rng.random() < 0.25:  # an old, commented-out value above the one in effect
                mark = ";" if fmt == "ini" else "#"
                lines.append(f"{indent}{mark} {key}{sep}{_KEYS[key](rng)}  (old)")
            lines.append(f"{indent}{key}{sep}{value}")
        lines.append("")
    return "\n".join(lines), sections


def config_value(rng: random.Random, style: Style) -> Episode:
    fmt = rng.choice(["ini", "yaml"])
    ext = {"ini": "ini", "yaml": "yaml"}[fmt]
    services = sample(rng, SERVICES, rng.randint(2, 4))
    folder = rng.choice(["conf", "settings", "deploy", "etc"])
    files: dict[str, str] = {}
    truth: dict[str, dict[str, dict[str, str]]] = {}
    for svc in services:
        text, values = _config(rng, fmt)
        files[f"{folder}/{svc}.{ext}"] = f"# {svc} configuration\n" + text
        truth[svc] = values
    svc = services[0]
    path = f"{folder}/{svc}.{ext}"
    section = rng.choice(list(truth[svc]))
    key = rng.choice(list(truth[svc][section]))
    value = truth[svc][section][key]
    given = rng.random() < 0.6
    if given:
        instruction = phrase(rng, [
            "What is `{key}` set to in the `{section}` section of {path}? {tail}",
            "Look up {key} under {section} in {path}. {tail}",
            "In {path}, which value does {key} have in the {section} section? {tail}",
        ], key=key, section=section, path=path, tail=rng.choice(_VALUE_ONLY))
        turns = [calls(call("read_file", path=path)), answer(value)]
        tools = tools_for(rng, ["read_file"], ["list_dir", "glob", "grep"])
    else:
        instruction = phrase(rng, [
            "The {svc} service keeps its settings somewhere under {folder}/. What is its {section} {key}? {tail}",
            "Find the config of the {svc} service (it is in {folder}/) and tell me the {key} of its {section} section. {tail}",
        ], svc=svc, folder=folder, key=key, section=section, tail=rng.choice(_VALUE_ONLY))
        look = call("list_dir", path=folder) if rng.random() < 0.5 else call("glob", pattern=f"{folder}/*{svc}*")
        turns = [calls(look), calls(call("read_file", path=path)), answer(value)]
        tools = tools_for(rng, ["read_file", look.name], ["grep"])
        guessed = tool_reply(0, "guessed_path", call("read_file", path=f"{folder}/{svc}.conf"), weight=SEEN_IN_EVALS)
    other = [v for s in truth.values() for sec in s.values() for k, v in sec.items() if k == key and v != value]
    wrong = other[0] if other else _KEYS[key](rng)
    if wrong == value:
        wrong = value + "0"
    rejections = [
        reply(0, "answer_without_looking", wrong),
        reply(len(turns) - 1, "invented_content", wrong),
        reply(len(turns) - 1, "wrong_format", f"The {key} setting in the {section} section of {path} is {value}."),
    ] + ([] if given else [guessed])
    return Episode("config_value", instruction, Recipe(files, tools), turns, rejections, evidence=[value])


_VERBS = ["load", "parse", "render", "merge", "split", "score", "clean", "format", "resolve", "encode", "rank", "trim"]


def _module(rng: random.Random, name: str, functions: list[str], notes: list[str]) -> str:
    """A small Python module: one-line functions, each note as a comment inside one of them."""
    lines = [f'"""{name.replace("_", " ").capitalize()} helpers."""', ""]
    notes = list(notes)
    for fn in functions:
        lines += ["", f"def {fn}(value):"]
        if notes:
            lines.append(f"    # {notes.pop()}")
        lines += [f"    return value {rng.choice(['+', '*', '-'])} {rng.randrange(2, 40)}", ""]
    return "\n".join(lines).rstrip() + "\n"


def grep_search(rng: random.Random, style: Style) -> Episode:
    root = rng.choice(["lib", "app", "pkg", "services", "core"])
    names = sample(rng, NOUNS, rng.randint(4, 7))
    topics = sample(rng, TOPICS, 3)
    owners = sample(rng, HANDLES, 3)
    function_names = [f"{v}_{n}" for v, n in zip(sample(rng, _VERBS, len(names)), sample(rng, NOUNS, len(names)))]
    marker = rng.choice(["FIXME", "XXX", "HACK"])
    files: dict[str, str] = {}
    holders = sample(rng, names, 3)
    for i, name in enumerate(names):
        extra = []
        if name in holders:
            j = holders.index(name)
            extra.append(f"{marker}({owners[j]}): {topics[j]} is still wrong here")
        files[f"{root}/{name}.py"] = _module(rng, name, [function_names[i]], extra)
    kind = rng.choice(["owner", "file", "def"])
    if kind == "def":
        i = rng.randrange(len(names))
        target_fn, path = function_names[i], f"{root}/{names[i]}.py"
        instruction = phrase(rng, [
            "In which file under {root}/ is the function `{fn}` defined? Answer with the path only.",
            "Which module in {root}/ defines {fn}()? Reply with its path.",
        ], root=root, fn=target_fn)
        turns = [calls(call("grep", pattern=f"def {target_fn}\\(", path=root)), answer(path)]
        truth, evidence = path, f"def {target_fn}("
    else:
        topic, owner, path = topics[0], owners[0], f"{root}/{holders[0]}.py"
        if kind == "owner":
            instruction = phrase(rng, [
                "Somewhere in {root}/ there is a {marker} note about {topic}. Who is it assigned to? Reply with the name in parentheses only.",
                "Who owns the {marker} about {topic} in the {root} folder? Answer with the handle only.",
            ], root=root, marker=marker, topic=topic)
            truth = owner
        else:
            instruction = phrase(rng, [
                "Which file under {root}/ has the {marker} comment about {topic}? Give the path only.",
                "Find the file in {root}/ with a {marker} note on {topic}; answer with its path.",
            ], root=root, marker=marker, topic=topic)
            truth = path
        turns = [calls(call("grep", pattern=f"{marker}.*{topic.split()[0]}", path=root, ignore_case=True)), answer(truth)]
        evidence = topic
    tools = tools_for(rng, ["grep"], ["read_file", "list_dir", "glob", "run_shell"])
    others = [f"{root}/{n}.py" for n in names if f"{root}/{n}.py" != truth]
    wrong = pick(rng, [h for h in HANDLES if h not in owners]) if kind == "owner" else rng.choice(others)
    rejections = [reply(0, "answer_without_looking", wrong), reply(1, "invented_content", wrong)]
    return Episode("grep_search", instruction, Recipe(files, tools), turns, rejections, evidence=[evidence, truth])


_COMPONENTS = ["router", "worker", "db", "cache", "auth", "scheduler", "frontend", "queue"]


def long_log(rng: random.Random, style: Style) -> Episode:
    svc = pick(rng, SERVICES)
    day = f"2023-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    path = f"logs/{svc}-{day}.log"
    n = rng.randint(700, 900)
    tenants = [f"acct-{rng.randrange(1000, 9999)}" for _ in range(3)]
    first_at, second_at = rng.randrange(n // 5, n // 2), rng.randrange(n // 2 + 10, n - 5)
    noisy = rng.choice(_COMPONENTS)
    lines, errors = [], 0
    for i in range(n):
        stamp = f"{day}T{(i * 7) // 3600 % 24:02d}:{(i * 7) // 60 % 60:02d}:{(i * 7) % 60:02d}"
        comp = rng.choice(_COMPONENTS)
        if i == first_at:
            lines.append(f"{stamp} WARN quota: tenant {tenants[0]} exceeded its quota (limit {rng.randrange(100, 999)})")
        elif i == second_at:
            lines.append(f"{stamp} WARN quota: tenant {tenants[1]} exceeded its quota (limit {rng.randrange(100, 999)})")
        elif rng.random() < 0.04:
            errors += comp == noisy
            lines.append(f"{stamp} ERROR {comp}: request {rng.randrange(16**6):06x} failed with status {rng.choice([500, 502, 504])}")
        else:
            lines.append(f"{stamp} INFO {comp}: request {rng.randrange(16**6):06x} served in {rng.randrange(3, 900)}ms")
    build = f"{rng.choice('BRQ')}{rng.randrange(100, 999)}-{rng.randrange(10, 99)}"
    lines[:0] = [f"{day}T00:00:00 INFO boot: {svc} starting, build {build}", f"{day}T00:00:00 INFO boot: {n} workers ready"]
    files = {path: "\n".join(lines) + "\n"}
    kind = rng.choice(["count", "first", "two_facts"])
    use_shell = kind == "count"
    if kind == "two_facts":
        instruction = phrase(rng, [
            "{path} is very long. I need two things: the build it booted (near the top) and which tenant went over quota first. Reply as `BUILD TENANT`.",
            "From {path} (too large to read in one go): which build did it boot, and which tenant exceeded its quota first? Reply as `BUILD TENANT`, nothing else.",
        ], path=path)
        # Independent: the head of the file and a search, in one turn.
        turns = [calls(call("read_file", path=path, end_line=3), call("grep", pattern="exceeded its quota", path=path, max_matches=1)),
                 answer(f"{build} {tenants[0]}")]
        tools = tools_for(rng, ["read_file", "grep"], ["list_dir", "run_shell"])
        truth = build
    elif use_shell:
        instruction = phrase(rng, [
            "{path} is a huge service log; do not read it whole. How many ERROR lines come from the {comp} component? Answer with the number only.",
            "Count the ERROR lines logged by the {comp} component in {path} (the file is long; search it, don't read it all). Number only.",
        ], path=path, comp=noisy)
        command = f"grep -c ' ERROR {noisy}:' {path}"
        turns = [calls(call("run_shell", command=command)), answer(str(errors))]
        tools = tools_for(rng, ["run_shell"], ["read_file", "grep", "list_dir"])
        truth = str(errors)
    else:
        instruction = phrase(rng, [
            "{path} is thousands of lines long. Which tenant was the FIRST to exceed its quota? Answer with the tenant id only.",
            "Search {path} (it is much too big to open in full): which tenant id appears in the first 'exceeded its quota' warning? Reply with the id only.",
        ], path=path)
        turns = [calls(call("grep", pattern="exceeded its quota", path=path, max_matches=1)), answer(tenants[0])]
        tools = tools_for(rng, ["grep"], ["read_file", "list_dir", "run_shell"])
        truth = tenants[0]
    rejections = [
        tool_reply(0, "read_whole_file", call("read_file", path=path)),
        reply(0, "answer_without_looking", tenants[2] if not use_shell else str(errors + rng.randint(1, 9))),
    ]
    if kind == "two_facts":
        rejections.append(reply(1, "wrong_format", f"The build is {build} and the first tenant over quota is {tenants[0]}."))
        if not style.one_call_per_turn:
            rejections.append(tool_reply(0, "one_at_a_time", turns[0].calls[0]))
    return Episode("long_log", instruction, Recipe(files, tools), turns, rejections, evidence=[truth])


def give_up(rng: random.Random, style: Style) -> Episode:
    kind = rng.choice(["key", "marker"])
    if kind == "key":
        svc = pick(rng, SERVICES)
        path = f"{rng.choice(['conf', 'settings'])}/{svc}.ini"
        text, sections = _config(rng, "ini")
        present = {k for values in sections.values() for k in values}
        missing = rng.choice([k for k in _KEYS if k not in present])
        files = {path: f"# {svc} configuration\n" + text}
        instruction = phrase(rng, [
            "What is `{key}` set to in {path}? Reply with the value only.",
            "Tell me the {key} configured in {path}.",
        ], key=missing, path=path)
        first = call("read_file", path=path) if rng.random() < 0.6 else call("grep", pattern=missing, path=path)
        found = ", ".join(sorted(present))
        final = rng.choice([
            f"{path} does not set {missing}; the keys it has are {found}.",
            f"There is no {missing} in {path}, so I cannot give a value. It only sets {found}.",
        ])
        turns = [calls(first), answer(final)]
        tools = tools_for(rng, [first.name], ["list_dir", "glob"])
        evidence = [svc] if first.name == "read_file" else [f"no matches for {missing!r}"]
        invented = _KEYS[missing](rng)
    else:
        root = rng.choice(["lib", "app", "pkg"])
        names = sample(rng, NOUNS, rng.randint(3, 5))
        files = {f"{root}/{n}.py": _module(rng, n, [f"{rng.choice(_VERBS)}_{n}"], []) for n in names}
        topic = pick(rng, TOPICS)
        instruction = phrase(rng, [
            "Who is assigned the FIXME about {topic} in {root}/? Answer with the handle only.",
            "Find the FIXME note on {topic} under {root}/ and tell me its owner.",
        ], topic=topic, root=root)
        turns = [calls(call("grep", pattern="FIXME", path=root)),
                 answer(f"There is no FIXME in {root}/ at all, so nobody is assigned one about {topic}.")]
        tools = tools_for(rng, ["grep"], ["read_file", "list_dir"])
        evidence = ["no matches"]
        invented = pick(rng, HANDLES)
    rejections = [reply(len(turns) - 1, "invented_content", invented), reply(0, "answer_without_looking", invented)]
    if turns[0].calls[0].name == "grep":  # 'no matches' is the answer; searching again for the same thing is not
        rejections.append(repeated(1, turns[0].calls[0]))
    return Episode("give_up", instruction, Recipe(files, tools), turns, rejections, evidence=evidence)


def compare_files(rng: random.Random, style: Style) -> Episode:
    """Read several small files in one turn (they are independent) and compare one value."""
    folder = rng.choice(["conf", "settings", "services"])
    services = sample(rng, SERVICES, rng.randint(2, 4))
    key = rng.choice(["worker_count", "pool_size", "queue_depth", "batch_size"])
    values: dict[str, int] = {}
    files: dict[str, str] = {}
    for svc in services:
        while (value := int(_KEYS[key](rng))) in values.values():
            pass
        values[svc] = value
        others = {k: _KEYS[k](rng) for k in sample(rng, [k for k in _KEYS if k != key], 2)}
        body = {**others, key: str(value)}
        files[f"{folder}/{svc}.properties"] = "".join(f"{k}={v}\n" for k, v in body.items())
    largest = rng.random() < 0.5
    best = (max if largest else min)(values, key=values.get)
    instruction = phrase(rng, [
        "Of the services {list}, which one has the {most} {key}? Their settings are {folder}/<name>.properties. Reply with the service name only.",
        "Compare {key} across {list} (files in {folder}/, one per service) and tell me which service has the {most}. Name only.",
    ], list=", ".join(services), most="largest" if largest else "smallest", key=key, folder=folder)
    reads = [call("read_file", path=f"{folder}/{svc}.properties") for svc in services]
    turns = [calls(*reads), answer(best)]
    tools = tools_for(rng, ["read_file"], ["list_dir", "grep", "glob"])
    wrong = next(s for s in services if s != best)
    rejections = [reply(0, "answer_without_looking", wrong), reply(1, "invented_content", wrong)]
    if not style.one_call_per_turn:
        rejections.append(tool_reply(0, "one_at_a_time", reads[0]))
    return Episode("compare_files", instruction, Recipe(files, tools), turns, rejections,
                   evidence=[f"{key}={values[best]}"])


def dated_notes(rng: random.Random, style: Style) -> Episode:
    """Many dated notes; a fact changes over time and the latest one counts: grep the folder, read the order."""
    folder = rng.choice(["journal", "oncall", "handovers", "ops-log"])
    year = rng.choice([2021, 2022, 2025])
    people = sample(rng, FIRST_NAMES, rng.randint(3, 5))
    month = rng.randint(1, 9)
    days = sorted(rng.sample(range(1, 29), rng.randint(6, 10)))
    handover_days = sorted(rng.sample(days, len(people)))
    files: dict[str, str] = {}
    current = None
    for day in days:
        lines = [f"# Ops log {year}-{month:02d}-{day:02d}", ""]
        lines += [f"- {pick(rng, TOPICS)}: {rng.choice(['looked fine', 'needs a follow-up', 'discussed, no action'])}"
                  for _ in range(rng.randint(2, 4))]
        if day in handover_days:
            current = people[handover_days.index(day)]
            lines.insert(rng.randrange(2, len(lines) + 1), f"- pager duty handed over to {current}")
        files[f"{folder}/{year}-{month:02d}-{day:02d}.md"] = "\n".join(lines) + "\n"
    instruction = phrase(rng, [
        "{folder}/ has one file per day. Who holds pager duty now, i.e. after the most recent handover? First name only.",
        "Going by the daily files in {folder}/, who was pager duty last handed over to? Reply with the first name alone.",
    ], folder=folder)
    turns = [calls(call("grep", pattern="handed over to", path=folder)), answer(current)]
    tools = tools_for(rng, ["grep"], ["read_file", "list_dir", "glob"])
    rejections = [reply(1, "invented_content", people[0]), reply(0, "answer_without_looking", people[0])]
    return Episode("dated_notes", instruction, Recipe(files, tools), turns, rejections, evidence=[f"handed over to {current}"])
