"""Families that compute an answer: arithmetic with `calculator`, CSV / JSON questions with
`run_python`, and shell one-liners with `run_shell` (counting, listing, archiving).

The expert's answer is computed here from the generated data; the rollout checks that
the same value shows up in what the tool printed.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict

from iclaw.tools.calculator import evaluate

from evals.synth.episode import Episode, Recipe, Style
from evals.synth.families.common import (
    NUMBER_ONLY, SEEN_IN_EVALS, answer, call, calls, number_text, phrase, reply, rounded, tool_reply, tools_for,
)
from evals.synth.vocab import FIRST_NAMES, NOUNS, PRODUCTS, REGIONS, SKU_PREFIXES, ident, pick, sample

__all__ = ["arithmetic", "csv_question", "json_question", "shell_oneliner"]

def arithmetic(rng: random.Random, style: Style) -> Episode:
    kind = rng.choice(["discount", "growth", "split", "plain", "two_step"])
    if kind == "discount":
        item, qty, price, pct = pick(rng, PRODUCTS), rng.randint(3, 60), rng.randint(4, 250) + rng.choice([0, 0.5, 0.99]), rng.choice([5, 10, 12, 15, 20, 25])
        text = f"An order has {qty} units of {item} at {price} each, with a {pct}% discount on the total."
        question = "What does the order cost after the discount, to two decimals?"
        exprs = [f"{qty}*{price}*(1 - {pct}/100)"]
        copied = f"{qty}*{price} - {pct}%"
        decimals = 2
    elif kind == "growth":
        start, rate, years = rng.randint(800, 90000), rng.choice([1.5, 2, 3.5, 4, 6, 7.25]), rng.randint(2, 12)
        text = f"A fund of {start} grows by {rate}% per year, compounded yearly, for {years} years."
        question = "What is it worth at the end, rounded to whole units?"
        exprs = [f"round({start}*(1 + {rate}/100)**{years})"]
        copied = f"{start}*(1 + {rate}%)^{years}"
        decimals = 0
    elif kind == "split":
        total, people, tip = rng.randint(60, 900), rng.randint(3, 9), rng.choice([10, 12, 15, 18])
        text = f"A dinner bill of {total} gets a {tip}% tip, and {people} friends split it evenly."
        question = "How much does each person pay, to two decimals?"
        exprs = [f"{total}*(1 + {tip}/100)/{people}"]
        copied = f"{total} + {tip}% / {people}"
        decimals = 2
    elif kind == "plain":
        a, b, c = rng.randint(120, 9999), rng.randint(13, 999), rng.randint(11, 60)
        op, written = rng.choice([("+", "+"), ("-", "−")])
        text = f"Compute {a} × {b} {written} {c}²."
        question = "What is the result?"
        exprs = [f"{a}*{b} {op} {c}**2"]
        copied = f"{a} × {b} {written} {c}²"
        decimals = 0
    else:
        stock, sold_pct, crates, per = rng.randint(20, 250) * 20, rng.choice([10, 20, 25, 30, 40]), rng.randint(2, 9), rng.choice([12, 24, 36, 40])
        text = (f"A depot holds {stock} parcels. In the morning {sold_pct}% of them go out; at noon {crates} crates "
                f"of {per} parcels arrive; in the evening half of what it then holds goes out (rounded down).")
        question = "How many parcels are left at night?"
        first = f"{stock} - {stock}*{sold_pct}/100 + {crates}*{per}"
        middle = evaluate(first)
        exprs = [first, f"{number_text(middle)} - floor({number_text(middle)}/2)"]
        copied = f"{stock} - {sold_pct}% + {crates}*{per}"
        decimals = 0
    results = [evaluate(e) for e in exprs]
    value = results[-1]
    final = rounded(value, decimals)
    instruction = f"{text} {question} {rng.choice(['Use the calculator.', 'Use the calculator tool.', ''])} {rng.choice(NUMBER_ONLY)}"
    instruction = " ".join(instruction.split())
    turns = [calls(call("calculator", expression=e)) for e in exprs] + [answer(final)]
    tools = tools_for(rng, ["calculator"], ["run_python"]) if rng.random() < 0.7 else ["calculator"]
    guess = number_text(round(value * rng.choice([0.9, 1.1, 0.98, 1.03]), decimals), decimals)
    rejections = [
        reply(0, "answer_without_looking", guess),
        reply(len(turns) - 1, "wrong_format", f"The answer is {final}."),
        tool_reply(0, "copied_notation", call("calculator", expression=copied), weight=SEEN_IN_EVALS),
    ]
    if len(exprs) > 1:
        rejections.append(reply(1, "stopped_early", number_text(results[0])))
    evidence = [number_text(results[0])] if len(exprs) > 1 else []
    return Episode("arithmetic", instruction, Recipe({}, tools), turns, rejections, evidence=evidence)


def csv_question(rng: random.Random, style: Style) -> Episode:
    name = rng.choice(["shipments", "readings", "tickets", "donations", "orders_q3", "harvest"])
    path = f"{rng.choice(['data/', '', 'exports/'])}{name}.csv"
    group_col = rng.choice(["depot", "station", "team", "region"])
    value_col = rng.choice(["crates", "kwh", "hours", "liters"])
    groups = sample(rng, [*REGIONS, *[n.capitalize() for n in NOUNS[:8]]], rng.randint(3, 6))
    rows = []
    for i in range(rng.randint(12, 30)):
        rows.append((f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}", rng.choice(groups), rng.randint(1, 400)))
    totals: dict[str, int] = defaultdict(int)
    counts: dict[str, int] = defaultdict(int)
    for _, g, v in rows:
        totals[g] += v
        counts[g] += 1
    text = f"date,{group_col},{value_col}\n" + "".join(f"{d},{g},{v}\n" for d, g, v in rows)
    kind = rng.choice(["max_total", "mean", "count_above"])
    if kind == "max_total" and len(set(totals.values())) != len(totals):
        kind = "count_above"  # a tie has no single answer
    load = f"import csv\nrows = list(csv.DictReader(open({path!r})))\n"
    if kind == "max_total":
        best = max(totals, key=totals.get)
        instruction = phrase(rng, [
            "In {path}, add up {v} for each {g}. Which {g} has the largest sum? Reply with its name only.",
            "Sum {v} per {g} in {path}. Which {g} comes out on top? Reply with its name only.",
        ], g=group_col, v=value_col, path=path)
        code = (load + "totals = {}\nfor r in rows:\n"
                f"    totals[r[{group_col!r}]] = totals.get(r[{group_col!r}], 0) + int(r[{value_col!r}])\n"
                "print(sorted(totals.items(), key=lambda kv: -kv[1]))\n")
        final, evidence = best, f"('{best}', {totals[best]})"
    elif kind == "mean":
        g = rng.choice(sorted(counts))
        mean = totals[g] / counts[g]
        instruction = phrase(rng, [
            "What is the average {v} for {g} {name} in {path}, to two decimals? Number only.",
            "In {path}, average the {v} column over the rows where {col} is {name}. Answer with the number, two decimals.",
        ], v=value_col, g=group_col, col=group_col, name=g, path=path)
        code = load + f"vals = [int(r[{value_col!r}]) for r in rows if r[{group_col!r}] == {g!r}]\nprint(round(sum(vals) / len(vals), 2))\n"
        final, evidence = f"{mean:.2f}", str(round(mean, 2))
    else:
        limit = rng.choice([100, 150, 200, 250, 300])
        n = sum(1 for *_, v in rows if v > limit)
        instruction = phrase(rng, [
            "How many rows of {path} have {v} above {limit}? Answer with the number only.",
            "Count the entries in {path} whose {v} is greater than {limit}. Number only.",
        ], v=value_col, limit=limit, path=path)
        code = load + f"print(sum(1 for r in rows if int(r[{value_col!r}]) > {limit}))\n"
        final, evidence = str(n), str(n)
    head = call("read_file", path=path, end_line=3)
    turns = [calls(head), calls(call("run_python", code=code)), answer(final)]
    tools = tools_for(rng, ["read_file", "run_python"], ["list_dir", "calculator", "run_shell"])
    shown = rows[:2]
    early = shown[0][1] if kind == "max_total" else str(shown[0][2])
    rejections = [
        reply(1, "stopped_early", early),
        reply(0, "answer_without_looking", early),
    ]
    return Episode("csv_question", instruction, Recipe({path: text}, tools), turns, rejections, evidence=[evidence])


def json_question(rng: random.Random, style: Style) -> Episode:
    path = rng.choice(["stock.json", "catalog/items.json", "warehouse.json", "inventory/bins.json"])
    prefix = pick(rng, SKU_PREFIXES)
    items = []
    for _ in range(rng.randint(6, 14)):
        items.append({
            "sku": ident(rng, prefix),
            "name": pick(rng, PRODUCTS),
            "qty": rng.randint(0, 80),
            "bin": f"{rng.choice('ABCDE')}{rng.randint(1, 9)}",
            "owner": pick(rng, FIRST_NAMES),
        })
    skus = [i["sku"] for i in items]
    if len(set(skus)) != len(skus):
        for k, item in enumerate(items):
            item["sku"] = f"{prefix}-{1000 + k * 37}"
    text = json.dumps({"updated": "2024-06-30", "items": items}, indent=2) + "\n"
    limit = rng.choice([5, 10, 15, 20])
    low = [i["sku"] for i in items if i["qty"] < limit]
    load = f"import json\nitems = json.load(open({path!r}))['items']\n"
    kind = rng.choice(["list", "object", "write"]) if low else rng.choice(["object", "write"])
    out = None
    if kind == "write":
        out = rng.choice(["by_owner.json", "owners.json", "report/owner_totals.json"])
        owners: dict[str, int] = defaultdict(int)
        for i in items:
            owners[i["owner"]] += i["qty"]
        instruction = phrase(rng, [
            "From {path}, write {out}: a JSON object mapping each owner to the total qty of their items, keys sorted. Then tell me which owner has the most.",
            "Create {out} with the qty summed per owner from {path} (JSON object, sorted keys), and name the owner with the largest total.",
        ], path=path, out=out)
        code = (load + "totals = {}\nfor i in items:\n    totals[i['owner']] = totals.get(i['owner'], 0) + i['qty']\n"
                + ("import os\nos.makedirs('report', exist_ok=True)\n" if "/" in out else "")
                + f"json.dump(dict(sorted(totals.items())), open({out!r}, 'w'), indent=2)\n"
                "print(max(totals.items(), key=lambda kv: kv[1]))\n")
        best = max(owners.items(), key=lambda kv: kv[1])
        final = f"Wrote {out} with {len(owners)} owners; {best[0]} has the most ({best[1]})."
        evidence = f"('{best[0]}', {best[1]})"
        if sum(1 for v in owners.values() if v == best[1]) > 1:  # a tie has no single answer: ask for the list instead
            kind = "object"
    if kind == "list":
        instruction = phrase(rng, [
            "Which SKUs in {path} have a qty below {limit}? Answer with a JSON list of the SKUs in file order, nothing else.",
            "List the SKUs from {path} whose qty is under {limit}, as a JSON array (file order). Only the JSON.",
        ], path=path, limit=limit)
        code = load + f"print(json.dumps([i['sku'] for i in items if i['qty'] < {limit}]))\n"
        final = evidence = json.dumps(low)
    elif kind == "object":
        by_bin: dict[str, int] = defaultdict(int)
        for i in items:
            by_bin[i["bin"][0]] += i["qty"]
        final = json.dumps(dict(sorted(by_bin.items())))
        instruction = phrase(rng, [
            "Using {path}, total the qty per bin row (the bin's letter). Answer with a JSON object mapping letter to total, keys sorted, and nothing else.",
            "From {path}: sum qty by the first letter of bin. Reply only with JSON like {{\"A\": 12}}, keys in order.",
        ], path=path)
        code = (load + "totals = {}\nfor i in items:\n    totals[i['bin'][0]] = totals.get(i['bin'][0], 0) + i['qty']\n"
                "print(json.dumps(dict(sorted(totals.items()))))\n")
        evidence = final
    turns = [calls(call("read_file", path=path, end_line=12)), calls(call("run_python", code=code)), answer(final)]
    tools = tools_for(rng, ["read_file", "run_python"], ["list_dir", "glob"])
    if kind == "write":
        rejections = [reply(1, "stopped_early", f"{items[0]['owner']} has the most."),
                      reply(1, "invented_content", f"Wrote {out}.")]
    else:
        rejections = [
            reply(len(turns) - 1, "wrong_format", f"Here is the result: {final}"),
            reply(1, "stopped_early", json.dumps(low[:1] if kind == "list" else {"A": items[0]["qty"]})),
        ]
    return Episode("json_question", instruction, Recipe({path: text}, tools), turns, rejections, evidence=[evidence])


def shell_oneliner(rng: random.Random, style: Style) -> Episode:
    root = rng.choice(["docs", "site", "handbook", "assets", "reports"])
    ext = rng.choice(["md", "txt", "csv", "sh", "json"])
    files: dict[str, str] = {}
    target = 0
    subdirs = sample(rng, NOUNS, rng.randint(2, 4))
    for sub in ["", *subdirs]:
        for _ in range(rng.randint(1, 4)):
            e = ext if rng.random() < 0.6 else rng.choice(["yml", "py", "html", "log"])
            name = f"{pick(rng, NOUNS)}_{rng.randint(1, 99)}.{e}"
            rel = f"{root}/{sub + '/' if sub else ''}{name}"
            if rel not in files:
                files[rel] = f"{name} {rng.randint(0, 999)}\n"
                target += e == ext
    kind = rng.choice(["count", "archive", "lines", "list"])
    if kind == "list":
        names = sorted(p.rsplit("/", 1)[1] for p in files if p.endswith(f".{ext}"))
        if not names:
            rel = f"{root}/{pick(rng, NOUNS)}_0.{ext}"
            files[rel] = "placeholder\n"
            names = [rel.rsplit("/", 1)[1]]
        instruction = phrase(rng, [
            "List the names of all .{ext} files anywhere under {root}/, without their folders, sorted, one per line. Use the shell.",
            "With one shell command, print the bare file names of every .{ext} file in {root}/ (subfolders too), sorted alphabetically. Reply with the list only, one per line.",
        ], ext=ext, root=root)
        command = f"find {root} -type f -name '*.{ext}' -printf '%f\\n' | sort"
        final = "\n".join(sorted(names))
    elif kind == "count" or target == 0:
        instruction = phrase(rng, [
            "How many .{ext} files does {root}/ hold, counting its subfolders too? {tail}",
            "Count every file ending in .{ext} anywhere in {root}/. {tail}",
        ], ext=ext, root=root, tail=rng.choice(NUMBER_ONLY))
        command = f"find {root} -type f -name '*.{ext}' | wc -l"
        final = str(target)
    elif kind == "archive":
        archive = f"{root}-{rng.randint(2020, 2030)}.tar.gz"
        instruction = phrase(rng, [
            "Using the shell, pack {root}/ into {archive} (gzip tar, member paths starting with {root}/), then say how many plain files ended up inside. Number only.",
            "Create a gzip-compressed tar archive {archive} of the {root} folder with the shell and report how many files it holds (just the number).",
        ], root=root, archive=archive)
        command = f"tar -czf {archive} {root} && tar -tzf {archive} | grep -c '[^/]$'"
        final = str(len(files))
    else:
        instruction = phrase(rng, [
            "How many lines do the .{ext} files directly inside {root}/ have in total (not subfolders)? Use the shell. Number only.",
            "With a shell one-liner, count the total lines of the {root}/*.{ext} files (top level only). Answer with the number.",
        ], ext=ext, root=root)
        top = [p for p in files if p.count("/") == 1 and p.endswith(f".{ext}")]
        if not top:
            rel = f"{root}/{pick(rng, NOUNS)}_0.{ext}"
            files[rel] = "first\nsecond\n"
            top = [rel]
        command = f"cat {root}/*.{ext} | wc -l"
        final = str(sum(files[p].count("\n") for p in top))
    turns = [calls(call("run_shell", command=command)), answer(final)]
    tools = tools_for(rng, ["run_shell"], ["list_dir", "read_file", "glob"])
    guess = final.splitlines()[0] if kind == "list" else str(int(final) + rng.randint(1, 4))
    rejections = [reply(0, "answer_without_looking", guess)]
    if kind == "list" and final.count("\n"):
        rejections.append(reply(1, "wrong_format", f"The .{ext} files are: {', '.join(final.splitlines())}."))
    return Episode("shell_oneliner", instruction, Recipe(files, tools), turns, rejections, evidence=[final])
