"""The dependency direction of DESIGN.md: iclaw never imports torch/llm; llm never imports iclaw/evals;
llm.infer never imports llm.train; nothing but the `iclaw eval` command imports evals. Inside llm:
no import cycle between modules, and nothing in llm.infer or llm.train imports what builds on it."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(package: str):
    for f in (ROOT / package).rglob("*.py"):
        tree = ast.parse(f.read_text(), filename=str(f))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    yield f, a.name
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                yield f, node.module


def offenders(package: str, forbidden: tuple[str, ...]):
    return [
        f"{f.relative_to(ROOT)} imports {m}"
        for f, m in imported_modules(package)
        if any(m == x or m.startswith(x + ".") for x in forbidden)
    ]


def test_llm_never_imports_iclaw_or_evals():
    assert offenders("llm", ("iclaw", "evals")) == []


def test_infer_never_imports_train():
    assert offenders("llm/infer", ("llm.train",)) == []


def test_iclaw_never_imports_torch_or_llm_statically():
    bad = [x for x in offenders("iclaw", ("torch", "llm")) if "evals" not in x]
    assert bad == []


def test_import_iclaw_and_its_cli_does_not_load_torch():
    code = "import sys, iclaw, iclaw.cli; assert 'torch' not in sys.modules; assert 'evals' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    out = subprocess.run([str(Path(sys.executable).parent / "iclaw"), "--help"], capture_output=True, text=True)
    assert out.returncode == 0


def _module_name(f: Path) -> str:
    parts = list(f.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(tree: ast.AST):
    """Import nodes anywhere (module level or inside functions), except `if TYPE_CHECKING:` blocks,
    which name types for annotations and never run."""
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING":
            node.body = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node


def llm_import_graph() -> dict[str, set[str]]:
    """Module -> the llm modules it imports (`from pkg import mod` counts as importing pkg.mod)."""
    files = {_module_name(f): f for f in (ROOT / "llm").rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, f in files.items():
        package = name if f.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in _runtime_imports(ast.parse(f.read_text(), filename=str(f))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name in files)
                continue
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(up + ([base] if base else []))
            for a in node.names:
                if f"{base}.{a.name}" in files:
                    targets.add(f"{base}.{a.name}")
                elif base in files:
                    targets.add(base)
        graph[name] = targets - {name}
    return graph


def _cycle_from(graph: dict[str, set[str]], start: str) -> list[str] | None:
    """A shortest import path from `start` back to itself, if there is one (breadth first)."""
    paths = {t: [start, t] for t in sorted(graph[start])}
    queue = list(paths)
    while queue:
        node = queue.pop(0)
        if node == start:
            return paths[node]
        for t in sorted(graph.get(node, ())):
            if t not in paths:
                paths[t] = paths[node] + [t]
                queue.append(t)
    return None


def test_no_llm_module_imports_a_module_that_imports_it_back():
    graph = llm_import_graph()
    cycles = {" -> ".join(c) for m in graph if (c := _cycle_from(graph, m)) is not None}
    assert sorted(cycles) == []


# What builds on each package: importing from one of these is an arrow running back up.
ABOVE = {
    "llm/infer": ("llm.train", "llm.serve", "llm.experiments", "llm.cli"),
    "llm/train": ("llm.serve", "llm.experiments", "llm.cli"),
}


def test_no_upward_import_from_infer_or_train():
    graph = llm_import_graph()
    bad = [
        f"{m} imports {t}"
        for package, above in ABOVE.items()
        for m, targets in graph.items()
        if m.startswith(package.replace("/", ".") + ".") or m == package.replace("/", ".")
        for t in sorted(targets)
        if any(t == a or t.startswith(a + ".") for a in above)
    ]
    assert bad == []

