"""The files an experiment leaves in its --out folder: report.md, CSV tables and PNG plots.

All writes are atomic (temp file + rename). matplotlib is imported lazily with the Agg
backend. This module formats; it knows nothing about training.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llm.atomic import atomic_write_text
from llm.errors import ConfigError

__all__ = ["write_csv", "markdown_table", "write_report", "new_figure", "save_figure", "fmt"]


def fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3g}"
        return f"{value:.{digits}g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())
    return path


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], headers: Sequence[str] | None = None) -> str:
    head = list(headers or columns)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        lines.append("| " + " | ".join(fmt(row.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def write_report(path: Path, title: str, command: str, context: str, sections: Sequence[tuple[str, str]]) -> Path:
    parts = [
        f"# {title}",
        "",
        f"Reproduce: `{command}`",
        "",
        context,
        f"Written {time.strftime('%Y-%m-%d %H:%M:%S')}.",
        "",
    ]
    for heading, body in sections:
        parts += [f"## {heading}", "", body.strip(), ""]
    atomic_write_text(path, "\n".join(parts))
    return path


def new_figure(*args: Any, **kwargs: Any):
    """(figure, axes) from matplotlib's pyplot.subplots with the non-interactive backend."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ConfigError("experiments draw plots with matplotlib: pip install 'iclaw-llm[plot]'") from exc
    return plt.subplots(*args, **kwargs)


def save_figure(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path
