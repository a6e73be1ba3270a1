"""Families about tools that fail or take time: retry after a transient error, a new approach
after a permanent one (a missing file, a retired API with the data in a workspace table),
and several independent lookups in one turn (mock APIs with latency).

Faults and mock tools are declared in the recipe exactly like a task's `faults:` and
`mock_tools:`. How often a transient fault must fire for the model to see it depends on
the profile: v2's executor retries it by itself first (`Style.transient_failures`).
"""

from __future__ import annotations

import json
import random

from iclaw.tools import FaultSpec, MockToolSpec

from evals.synth.episode import Episode, Recipe, Style
from evals.synth.families.common import (
    SEEN_IN_EVALS, answer, call, calls, number_text, phrase, repeated, replan_note, reply, tool_reply, tools_for,
)
from evals.synth.vocab import CITIES, SERVICES, SKU_PREFIXES, ident, pick, sample

__all__ = ["retry_transient", "replan_missing", "parallel_lookup"]

_TRANSIENT = [
    "EAGAIN: resource temporarily unavailable while reading {what}",
    "EIO: temporary I/O error on {what}, try again",
    "503 Service Unavailable: the backend for {what} is overloaded, try again",
    "connection reset by peer while fetching {what}",
]


def _settings(rng: random.Random) -> tuple[str, str, str]:
    """A key=value settings text, one of its keys and that key's value."""
    keys = sample(rng, ["max_jobs", "poll_seconds", "shard_count", "keep_days", "chunk_kb", "grace_period"], 4)
    values = {k: str(rng.randint(2, 720)) for k in keys}
    text = "".join(f"{k}={v}\n" for k, v in values.items())
    key = rng.choice(keys)
    return text, key, values[key]


def _mock(name: str, description: str, param: str, responses: dict[str, str], rng: random.Random, default: str) -> MockToolSpec:
    return MockToolSpec(
        name=name,
        description=description,
        parameters={"type": "object", "properties": {param: {"type": "string"}}, "required": [param]},
        latency_s=rng.choice([0.05, 0.1, 0.2]),
        responses=responses,
        default=default,
    )


def retry_transient(rng: random.Random, style: Style) -> Episode:
    failures = list(range(1, style.transient_failures + 1))
    if rng.random() < 0.5:
        svc = pick(rng, SERVICES)
        path = f"{rng.choice(['config', 'runtime', 'opts'])}/{svc}.properties"
        text, key, value = _settings(rng)
        error = rng.choice(_TRANSIENT).format(what=path)
        recipe = Recipe({path: text}, tools_for(rng, ["read_file"], ["list_dir", "grep"]),
                        faults=[FaultSpec(tool="read_file", calls=failures, error=error)])
        instruction = phrase(rng, [
            "What is {key} in {path}? Number only.",
            "Read {path} and tell me the value of {key}. Reply with the number only.",
        ], key=key, path=path)
        the_call = call("read_file", path=path)
        evidence = f"{key}={value}"
    else:
        ticket = ident(rng, rng.choice(["OPS", "SUP", "INC"]), 5)
        value = rng.choice(["open", "waiting on customer", "resolved", "escalated"])
        mock = _mock("ticket_status", "Current status of a support ticket.", "ticket", {ticket: value}, rng, "no such ticket")
        error = rng.choice(_TRANSIENT).format(what=f"ticket {ticket}")
        recipe = Recipe({}, tools_for(rng, [], ["calculator", "read_file"]), mock_tools=[mock],
                        faults=[FaultSpec(tool="ticket_status", calls=failures, error=error)])
        instruction = phrase(rng, [
            "What is the status of ticket {t}? Use ticket_status and answer with the status only.",
            "Check ticket {t} with the ticket_status tool and tell me its status, nothing else.",
        ], t=ticket)
        the_call = call("ticket_status", ticket=ticket)
        evidence = value
    plan = replan_note(style, "The failure was temporary, so retry the same call.", "Answer with the value it returns.")
    turns = [calls(the_call), calls(the_call, content=plan), answer(value)]
    rejections = [
        reply(1, "ignored_error", value + "0" if value.isdigit() else "open"),
        reply(1, "stopped_early", f"I could not get it: {error}"),
    ]
    if value == "open":
        rejections[0] = reply(1, "ignored_error", "resolved")
    return Episode("retry_transient", instruction, recipe, turns, rejections, evidence=[evidence])


def replan_missing(rng: random.Random, style: Style) -> Episode:
    return (_missing_file if rng.random() < 0.55 else _retired_api)(rng, style)


_PERMANENT = [
    "410 Gone: {name} was retired; the figures are published as files now",
    "401 Unauthorized: the token for {name} has expired and cannot be renewed today",
    "403 Forbidden: this workspace has no access to {name}; use the exported table",
]


def _retired_api(rng: random.Random, style: Style) -> Episode:
    """A mock API that fails for good; the same data sits in a table in the workspace."""
    cities = sample(rng, CITIES, rng.randint(4, 6))
    rainfall = {c: rng.randint(300, 2400) for c in cities}
    city = rng.choice(cities)
    api = _mock("rainfall_mm", "Average yearly rainfall of a city in millimetres.", "city",
                {c: f"{v} mm" for c, v in rainfall.items()}, rng, "unknown city")
    folder = rng.choice(["exports", "tables", "climate"])
    table = f"{folder}/rainfall_{rng.randint(2019, 2023)}.csv"
    files = {table: "city,mm_per_year\n" + "".join(f"{c},{v}\n" for c, v in rainfall.items()),
             f"{folder}/sources.txt": f"Tables exported from the climate service ({rng.randint(2, 12)} files).\n"}
    error = rng.choice(_PERMANENT).format(name="rainfall_mm")
    recipe = Recipe(files, tools_for(rng, ["read_file", "list_dir"], ["grep", "glob", "calculator"]), mock_tools=[api],
                    faults=[FaultSpec(tool="rainfall_mm", calls=list(range(1, 9)), error=error)])
    instruction = phrase(rng, [
        "How much rain does {city} get per year, in mm? Ask rainfall_mm; if that service fails, the data was also exported into this workspace. Number only.",
        "Yearly rainfall in {city} (mm)? Try the rainfall_mm tool first; the same figures exist as a table here. Reply with the number.",
    ], city=city)
    plan = replan_note(style, "rainfall_mm fails for good; find the exported table in the workspace.",
                       f"Read the row for {city}.")
    turns = [calls(call("rainfall_mm", city=city)), calls(call("list_dir", path=folder), content=plan),
             calls(call("read_file", path=table)), answer(str(rainfall[city]))]
    rejections = [
        repeated(1, call("rainfall_mm", city=city)),
        reply(1, "ignored_error", str(rainfall[city] + rng.randint(10, 200))),
        reply(1, "stopped_early", f"The rainfall service is unavailable ({error.split(':')[0]}), so I cannot say."),
        tool_reply(1, "guessed_path", call("read_file", path=f"{folder}/rainfall.csv"), weight=SEEN_IN_EVALS),
    ]
    return Episode("replan_missing", instruction, recipe, turns, rejections, evidence=[f"{city},{rainfall[city]}"])


def _missing_file(rng: random.Random, style: Style) -> Episode:
    svc = pick(rng, SERVICES)
    text, key, value = _settings(rng)
    real_dir, wrong_dir = sample(rng, ["config", "etc", "opts", "runtime", "deploy"], 2)
    ext = rng.choice(["properties", "env", "cfg"])
    real, wrong = f"{real_dir}/{svc}.{ext}", f"{wrong_dir}/{svc}.{ext}"
    files = {real: text}
    for other in sample(rng, [s for s in SERVICES if s != svc], 2):
        files[f"{real_dir}/{other}.{ext}"] = _settings(rng)[0]
    instruction = phrase(rng, [
        "Read {wrong} and tell me {key}. Number only.",
        "What does {wrong} set {key} to? Reply with the number only.",
        "The {svc} settings live in {wrong}; what is {key} there? Just the number.",
    ], wrong=wrong, key=key, svc=svc)
    if rng.random() < 0.5:
        look = call("glob", pattern=f"**/{svc}.*")
    else:
        look = call("list_dir", path=".", depth=2)
    plan = replan_note(style, f"{wrong} does not exist; search the workspace for the {svc} settings file.",
                       f"Read it and report {key}.")
    turns = [calls(call("read_file", path=wrong)), calls(look, content=plan), calls(call("read_file", path=real)), answer(value)]
    tools = tools_for(rng, ["read_file", look.name], ["grep"])
    rejections = [
        repeated(1, call("read_file", path=wrong)),
        reply(1, "ignored_error", str(int(value) + rng.randint(1, 50))),
        tool_reply(1, "guessed_path", call("read_file", path=f"{svc}.{ext}"), weight=SEEN_IN_EVALS),
    ]
    return Episode("replan_missing", instruction, Recipe(files, tools), turns, rejections,
                   evidence=["no such file", f"{key}={value}"])


def parallel_lookup(rng: random.Random, style: Style) -> Episode:
    kind = rng.choice(["population", "shipping", "stock", "basket"])
    n = rng.randint(3, 5)
    extra_tools: list[str] = []
    if kind == "basket":
        return _basket(rng, style, n)
    if kind == "population":
        keys = sample(rng, CITIES, n)
        values = {c: rng.randrange(80_000, 4_000_000) for c in keys}
        responses = {c: f"{v} residents (latest estimate)" for c, v in values.items()}
        mock = _mock("city_population", "Population of a city.", "city", responses, rng, "unknown city")
        best = max(values, key=values.get)
        instruction = phrase(rng, [
            "Which of these cities has the most residents: {list}? Check every city with city_population; the checks do not depend on each other. Reply with the city name alone.",
            "Use city_population for {list} and tell me which city is the largest. City name only.",
        ], list=", ".join(keys))
        final, lookups = best, [call("city_population", city=c) for c in keys]
        evidence = responses[best]
    elif kind == "shipping":
        keys = sample(rng, CITIES, n)
        prices = {c: rng.randrange(900, 9000) / 100 for c in keys}
        responses = {c: f"{p:.2f} EUR, {rng.randint(1, 9)} days" for c, p in prices.items()}
        mock = _mock("shipping_quote", "Price and delivery time to ship one parcel to a city.", "destination", responses, rng, "no route")
        final = min(prices, key=prices.get)
        evidence = responses[final]
        instruction = phrase(rng, [
            "Which destination is cheapest to ship a parcel to: {list}? Get a shipping_quote for each. Reply with the destination only.",
            "Compare shipping_quote prices for {list} and name the cheapest destination (name only).",
        ], list=", ".join(keys))
        lookups = [call("shipping_quote", destination=c) for c in keys]
    else:
        prefix = pick(rng, SKU_PREFIXES)
        keys = []
        while len(keys) < n:
            sku = ident(rng, prefix)
            keys += [] if sku in keys else [sku]
        levels = {s: rng.randint(0, 400) for s in keys}
        mock = _mock("stock_level", "Units in stock for one SKU.", "sku", {s: f"{v} units" for s, v in levels.items()}, rng, "unknown SKU")
        instruction = phrase(rng, [
            "How many units are in stock in total for {list}? Check each with stock_level, then add them up. Number only.",
            "Sum the stock_level of these SKUs: {list}. Reply with the sum alone.",
        ], list=", ".join(keys))
        lookups = [call("stock_level", sku=s) for s in keys]
        total = sum(levels.values())
        final = evidence = str(total)
        extra_tools = ["calculator"]
    turns = [calls(*lookups)]
    if kind == "stock":
        turns.append(calls(call("calculator", expression=" + ".join(str(levels[s]) for s in keys))))
    turns.append(answer(final))
    tools = tools_for(rng, extra_tools, ["read_file", "calculator"]) if rng.random() < 0.7 else extra_tools
    wrong = keys[0] if keys[0] != final else keys[1]
    rejections = [reply(0, "answer_without_looking", wrong if kind != "stock" else number_text(len(keys) * 100))]
    if not style.one_call_per_turn:
        rejections.append(tool_reply(0, "one_at_a_time", lookups[0]))
    return Episode("parallel_lookup", instruction, Recipe({}, tools, mock_tools=[mock]), turns, rejections, evidence=[evidence])


def _basket(rng: random.Random, style: Style, n: int) -> Episode:
    """Read an order from a file, price every line with a mock API in one turn, add up with the calculator."""
    prefix = pick(rng, SKU_PREFIXES)
    skus: list[str] = []
    while len(skus) < n:
        sku = ident(rng, prefix)
        skus += [] if sku in skus else [sku]
    qty = {s: rng.randint(1, 12) for s in skus}
    price = {s: rng.randrange(150, 9000) / 100 for s in skus}
    path = rng.choice(["order.json", "cart/basket.json", "requests/po-draft.json"])
    files = {path: json.dumps({"lines": [{"sku": s, "qty": qty[s]} for s in skus]}, indent=2) + "\n"}
    mock = _mock("unit_price", "Current unit price of one SKU, in EUR.", "sku",
                 {s: f"{price[s]:.2f}" for s in skus}, rng, "unknown SKU")
    expression = " + ".join(f"{qty[s]}*{price[s]:.2f}" for s in skus)
    total = sum(qty[s] * round(price[s], 2) for s in skus)
    final = f"{total:.2f}"
    instruction = phrase(rng, [
        "What does the order in {path} cost in EUR? Price each SKU with unit_price (the lookups are independent of each other), multiply by its qty and add up. Two decimals, number only.",
        "Total the order {path}: look up every SKU's unit_price, times its qty, summed. Reply with the EUR total to two decimals and nothing else.",
    ], path=path)
    lookups = [call("unit_price", sku=s) for s in skus]
    turns = [calls(call("read_file", path=path)), calls(*lookups), calls(call("calculator", expression=expression)), answer(final)]
    tools = tools_for(rng, ["read_file", "calculator"], ["run_python", "list_dir"])
    rejections = [
        reply(1, "answer_without_looking", f"{total * rng.choice([0.9, 1.1]):.2f}"),
        reply(0, "answer_without_looking", f"{total * 1.2:.2f}"),
    ]
    if not style.one_call_per_turn:
        rejections.append(tool_reply(1, "one_at_a_time", lookups[0]))
    return Episode("parallel_lookup", instruction, Recipe(files, tools, mock_tools=[mock]), turns, rejections,
                   evidence=[f"{price[skus[-1]]:.2f}"])
