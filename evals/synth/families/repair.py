"""Families where a first attempt fails and the expert repairs it instead of repeating it.

`fix_arguments`: a call the tool refuses as invalid (math notation copied into the
calculator, a regex RE2 cannot compile, an edit whose search text is not unique), then
the same tool called again with arguments fixed from what the error said.
`script_error`: a table question answered with `run_python` (decimal amounts, names with
spaces), sometimes through a script that raises first; the traceback says what to fix.

The slip the episode starts from is marked in `Episode.mistakes`, so no DPO pair prefers
it; the pairs are at the repair step, against repeating the failing call verbatim,
answering with the unevaluated expression, giving up, or an unrelated call.
"""

from __future__ import annotations

import random
from collections import Counter

from evals.synth.episode import Episode, Recipe, Style
from evals.synth.families.common import (
    SEEN_IN_EVALS, answer, call, calls, number_text, phrase, repeated, reply, tool_reply, tools_for,
)
from evals.synth.families.notation import draw_problem, notation_instruction
from evals.synth.vocab import CITIES, NOUNS, REGIONS, firm, pick, sample

__all__ = ["fix_arguments", "script_error"]


def fix_arguments(rng: random.Random, style: Style) -> Episode:
    return rng.choice([_calculator, _calculator, _regex, _ambiguous_edit])(rng, style)


def _calculator(rng: random.Random, style: Style) -> Episode:
    problem = draw_problem(rng)
    copied, fixed = call("calculator", expression=problem.written), call("calculator", expression=problem.expression)
    turns = [calls(copied), calls(fixed), answer(problem.final)]
    tools = tools_for(rng, ["calculator"], ["run_python"]) if rng.random() < 0.7 else ["calculator"]
    guess = number_text(round(problem.value * rng.choice([0.9, 1.1]), problem.decimals), problem.decimals)
    rejections = [
        repeated(1, copied),
        reply(1, "unevaluated_answer", problem.written, weight=SEEN_IN_EVALS),
        reply(1, "ignored_error", guess),
        reply(1, "stopped_early", f"The calculator cannot read {problem.written!r}, so I cannot compute it."),
        reply(2, "wrong_format", f"{problem.written} = {problem.final}"),
    ]
    return Episode("fix_arguments", notation_instruction(rng, problem), Recipe({}, tools), turns, rejections,
                   evidence=[problem.refusal], mistakes=[0])


def _regex(rng: random.Random, style: Style) -> Episode:
    """A literal `name(` is not a valid RE2 pattern: escape the parenthesis."""
    root = rng.choice(["engine", "backend", "toolkit", "svc", "corelib"])
    verb = rng.choice(["open", "close", "flush", "sync", "charge", "refund", "rotate", "seal"])
    fn = f"{verb}_{pick(rng, NOUNS)}"
    modules = sample(rng, NOUNS, rng.randint(4, 6))
    home, others = modules[0], modules[1:]
    callers = sorted(sample(rng, others, rng.randint(1, len(others) - 1)))
    files = {f"{root}/{home}.py": f'"""The {fn} primitive."""\n\n\ndef {fn}(handle):\n    return handle\n'}
    for name in others:
        if name in callers:
            files[f"{root}/{name}.py"] = (f"from {root}.{home} import {fn}\n\n\ndef {name}_step(handle):\n"
                                          f"    return {fn}(handle) or None\n")
        else:  # names the function in a comment, never calls it
            files[f"{root}/{name}.py"] = (f"# Unlike {fn}, this keeps the handle as it is.\n\n\n"
                                          f"def {name}_step(handle):\n    return handle\n")
    instruction = phrase(rng, [
        "Which modules under {root}/ call `{fn}(...)`? Leave out the file that defines it. List the paths, one per line.",
        "Find every file in {root}/ with a call to {fn}( — not its definition. Reply with the paths, one per line.",
    ], root=root, fn=fn)
    broken = call("grep", pattern=f"{fn}(", path=root)
    fixed = call("grep", pattern=f"{fn}\\(", path=root)
    final = "\n".join(f"{root}/{c}.py" for c in callers)
    turns = [calls(broken), calls(fixed), answer(final)]
    tools = tools_for(rng, ["grep"], ["read_file", "list_dir", "glob"])
    every = "\n".join(sorted(f"{root}/{m}.py" for m in others))
    rejections = [
        repeated(1, broken),
        reply(1, "stopped_early", f"grep cannot search for {fn}(, so I cannot tell."),
        reply(1, "ignored_error", every if every != final else f"{root}/{home}.py"),
        reply(2, "invented_content", "\n".join(sorted([*final.splitlines(), f"{root}/{home}.py"]))),
    ]
    return Episode("fix_arguments", instruction, Recipe(files, tools), turns, rejections,
                   evidence=["invalid regular expression", f"return {fn}(handle)"], mistakes=[0])


def _ambiguous_edit(rng: random.Random, style: Style) -> Episode:
    """The search text occurs twice: include the section header to make it unique."""
    path = f"{rng.choice(['conf', 'settings', 'deploy'])}/{pick(rng, NOUNS)}.{rng.choice(['toml', 'ini'])}"
    sections = sample(rng, ["upload", "download", "export", "sync", "archive", "preview", "thumbnails"], 3)
    key = rng.choice(["timeout_s", "max_retries", "chunk_mb", "workers", "queue_len"])
    old = rng.randint(2, 90)
    new = old + rng.randint(1, 40)
    third = rng.choice([v for v in range(2, 99) if v != old and not str(v).startswith(str(old))])
    values = dict(zip(sections, rng.sample([old, old, third], 3)))
    target = rng.choice([s for s, v in values.items() if v == old])
    text = "".join(f"[{s}]\n{key} = {v}\nenabled = {rng.choice(['true', 'false'])}\n\n" for s, v in values.items())
    instruction = phrase(rng, [
        "In {path}, change {key} in the [{section}] section from {old} to {new}. The other sections must keep their values.",
        "Set {key} = {new} for the [{section}] section of {path} (it is {old} now); leave every other section as it is.",
    ], path=path, key=key, section=target, old=old, new=new)
    loose = call("edit_file", path=path, search=f"{key} = {old}", replace=f"{key} = {new}")
    exact = call("edit_file", path=path, search=f"[{target}]\n{key} = {old}", replace=f"[{target}]\n{key} = {new}")
    final = f"Set {key} = {new} in the [{target}] section of {path}; the other sections are unchanged."
    turns = [calls(call("read_file", path=path)), calls(loose), calls(exact), answer(final)]
    tools = tools_for(rng, ["read_file", "edit_file"], ["grep", "list_dir", "write_file"])
    rejections = [
        repeated(2, loose),
        reply(2, "invented_content", final),
        reply(2, "stopped_early", f"{key} = {old} appears twice in {path}, so I cannot change it."),
    ]
    return Episode("fix_arguments", instruction, Recipe({path: text}, tools), turns, rejections,
                   evidence=["occurs 2 times", "edited"], mistakes=[1])


# Scripts with a bug a quick first draft has, and what the traceback then says.
_BUGS = {
    "int": "ValueError",  # int() on an amount with decimals
    "items": "AttributeError",  # .items() on the list of rows instead of on the totals
    "str_sum": "TypeError",  # adding the amount as text
}


def _script(path: str, who: str, amount: str, kind: str, name: str, bug: str | None) -> str:
    """The aggregation script for question `kind`; with `bug`, the first draft that raises."""
    head = f"import csv\nfrom collections import Counter\n\nrows = list(csv.DictReader(open({path!r}, newline='')))\n"
    if bug == "items":
        return head + "print(sorted(rows.items(), key=lambda kv: -kv[1])[:3])\n"
    value = {"int": f"int(row[{amount!r}])", "str_sum": f"row[{amount!r}]"}.get(bug or "", f"float(row[{amount!r}])")
    if bug == "str_sum":
        body = f"totals = {{}}\nfor row in rows:\n    totals[row[{who!r}]] = totals.get(row[{who!r}], 0) + {value}\n"
    else:
        body = f"totals = Counter()\nfor row in rows:\n    totals[row[{who!r}]] += {value}\n"
    show = {
        "top": "print(sorted(totals.items(), key=lambda kv: -kv[1])[:3])\n",
        "bottom": "print(sorted(totals.items(), key=lambda kv: kv[1])[:3])\n",
        "one": f"print('%.2f' % totals[{name!r}])\n",
    }[kind]
    return head + body + show


def script_error(rng: random.Random, style: Style) -> Episode:
    path = rng.choice(["billing/invoices_2023.csv", "ledger.csv", "exports/payments.csv", "q2_receipts.csv",
                       "finance/remittances.csv"])
    who = rng.choice(["client", "buyer", "account", "customer", "member", "vendor"])
    amount = rng.choice(["amount", "total_usd", "net_gbp", "value_chf", "paid"])
    extra = rng.choice(["city", "channel", "region"])
    names: list[str] = []
    while len(names) < rng.randint(4, 7):
        names += [] if (n := firm(rng)) in names else [n]
    pool = {"city": CITIES, "channel": ["web", "phone", "store", "partner"], "region": REGIONS}[extra]
    cents = [rng.randrange(2000, 250000) for _ in range(rng.randint(25, 60))]
    cents[0] += cents[0] % 100 == 0  # a first amount with decimals, which int() refuses
    rows = [(f"INV-{rng.randrange(10000, 99999)}", rng.choice(names), c / 100, pick(rng, pool)) for c in cents]
    totals: Counter[str] = Counter()
    for _, name, value, _ in rows:
        totals[name] += value
    ranked = sorted(totals.items(), key=lambda kv: -kv[1])
    text = f"invoice,{who},{amount},{extra}\n" + "".join(f"{i},{n},{v:.2f},{x}\n" for i, n, v, x in rows)
    kind = rng.choice(["top", "bottom", "one"])
    if kind in ("top", "bottom") and len({round(v, 2) for v in totals.values()}) != len(totals):
        kind = "one"  # a tie has no single answer
    name = rng.choice(list(totals))
    if kind == "top":
        instruction = phrase(rng, [
            "Which {who} in {path} has the largest {amount} once all their rows are added up? Reply with the name only.",
            "Add up {amount} per {who} in {path}. Who comes out on top? Name only.",
        ], who=who, amount=amount, path=path)
        final, evidence = ranked[0][0], f"[('{ranked[0][0]}', "
    elif kind == "bottom":
        instruction = phrase(rng, [
            "In {path}, which {who} has the smallest {amount} summed over all their rows? Name only.",
            "Total the {amount} column per {who} in {path} and tell me which {who} has the lowest total. Just the name.",
        ], who=who, amount=amount, path=path)
        final, evidence = ranked[-1][0], f"[('{ranked[-1][0]}', "
    else:
        instruction = phrase(rng, [
            "What is the total {amount} for {name} in {path}, to two decimals? Number only.",
            "Sum {amount} over every row of {path} where {who} is {name}. Reply with the number, two decimals.",
        ], who=who, amount=amount, path=path, name=name)
        final = evidence = f"{totals[name]:.2f}"
    peek = calls(call("read_file", path=path, end_line=3))
    good = call("run_python", code=_script(path, who, amount, kind, name, None))
    bug = rng.choice([None, None, None, *_BUGS])  # half the time a first draft that raises
    tools = tools_for(rng, ["read_file", "run_python"], ["list_dir", "run_shell", "calculator"])
    wrong = ranked[1][0] if final == ranked[0][0] else ranked[0][0]
    if bug is None:
        turns = [peek, calls(good), answer(final)]
        rejections = [reply(1, "stopped_early", rows[0][1] if kind != "one" else f"{rows[0][2]:.2f}"),
                      reply(0, "answer_without_looking", wrong if kind != "one" else f"{totals[name] * 1.1:.2f}"),
                      reply(2, "wrong_format", f"The answer is {final}, from the totals above.")]
        return Episode("script_error", instruction, Recipe({path: text}, tools), turns, rejections, evidence=[evidence])
    broken = call("run_python", code=_script(path, who, amount, kind, name, bug))
    turns = [peek, calls(broken), calls(good), answer(final)]
    unrelated = call("run_shell", command="python -m pytest -q tests")
    rejections = [
        repeated(2, broken),
        tool_reply(2, "unrelated_call", unrelated, weight=SEEN_IN_EVALS),
        reply(2, "ignored_error", wrong if kind != "one" else f"{totals[name] * 0.9:.2f}"),
    ]
    return Episode("script_error", instruction, Recipe({path: text}, tools), turns, rejections,
                   evidence=[_BUGS[bug], evidence], mistakes=[1])
