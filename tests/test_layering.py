"""The dependency direction of DESIGN.md: iclaw never imports torch/llm; llm never imports iclaw/evals;
llm.infer never imports llm.train; nothing but the `iclaw eval` command imports evals."""

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
