"""The dependency direction: importing iclaw (and its CLI) never imports torch, llm or evals."""

import subprocess
import sys


def test_iclaw_and_cli_import_no_model_stack():
    code = (
        "import sys, iclaw, iclaw.cli, iclaw.agent, iclaw.providers, iclaw.tools, iclaw.terminal, iclaw.bench\n"
        "bad = [m for m in ('torch', 'llm', 'evals') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"iclaw imported {out.stdout.strip()}"
