"""Text sources: turn a SOURCE string into a stream of documents (one `str` each).

A SOURCE is one of
    stdlib                  the Python standard library source of the running interpreter
    stdlib:json,email       the same, restricted to a few top-level modules/packages
    PATH                    a local file or folder: .txt/.md/.py/... (one document per file),
                            .jsonl/.json, .parquet, .csv (one document per record, `text_field`)
    NAME[:CONFIG]           a Hugging Face Hub dataset, streamed (needs the network)

Local structured files and hub datasets are read with the `datasets` library in streaming
mode, so nothing is cached on disk and memory stays flat. This module knows nothing about
tokenizers or token shards; `llm data prepare` and `llm tokenizer train` both read from it.
"""

from __future__ import annotations

import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from llm.errors import DataError

__all__ = ["Source", "parse_source", "iter_texts", "stdlib_files", "STRUCTURED_KINDS", "TEXT_SUFFIXES"]

# File suffix -> `datasets` builder name. Anything else in TEXT_SUFFIXES is read as plain text.
STRUCTURED_KINDS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
TEXT_SUFFIXES = {".txt", ".md", ".rst", ".py", ".text"}


@dataclass(frozen=True)
class Source:
    """A parsed SOURCE string: `kind` is stdlib | text | json | parquet | csv | hub."""

    spec: str
    kind: str
    files: tuple[Path, ...] = ()
    modules: tuple[str, ...] = ()  # stdlib restriction, empty = everything
    name: str = ""  # hub dataset name
    config: str | None = None  # hub dataset config


def stdlib_files(modules: tuple[str, ...] = ()) -> list[Path]:
    """The interpreter's standard library `.py` files in a fixed order (tests and idlelib included).

    `modules` keeps only files under those top-level names (`json` -> json/**, `textwrap` -> textwrap.py).
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    files = []
    for f in sorted(root.rglob("*.py")):
        rel = f.relative_to(root).parts
        if rel[0] in ("site-packages", "dist-packages") or "__pycache__" in rel:
            continue
        top = rel[0][:-3] if rel[0].endswith(".py") else rel[0]
        if modules and top not in modules:
            continue
        files.append(f)
    if modules:
        found = {(f.relative_to(root).parts[0]).removesuffix(".py") for f in files}
        unknown = sorted(set(modules) - found)
        if unknown:
            raise DataError(
                f"stdlib has no module {', '.join(map(repr, unknown))} (Python {sys.version.split()[0]} at {root}); "
                "example: stdlib:json,email,textwrap"
            )
    return files


def parse_source(spec: str) -> Source:
    """Recognise what kind of SOURCE `spec` names; raises DataError with the accepted forms."""
    spec = spec.strip()
    if not spec:
        raise DataError("empty SOURCE; give stdlib, a file/folder path, or a Hugging Face dataset name")
    if spec == "stdlib" or spec.startswith("stdlib:"):
        modules = tuple(m.strip() for m in spec.partition(":")[2].split(",") if m.strip())
        return Source(spec, "stdlib", modules=modules)
    path = Path(spec).expanduser()
    if path.exists():
        return _local_source(spec, path)
    if (
        path.suffix.lower() in STRUCTURED_KINDS
        or path.suffix.lower() in TEXT_SUFFIXES
        or spec.startswith((".", "/", "~"))
    ):
        raise DataError(
            f"{spec}: no such file or folder (a SOURCE is stdlib, a local .txt/.jsonl/.parquet/.csv file or folder, "
            "or a Hugging Face dataset name)"
        )
    name, _, config = spec.partition(":")
    return Source(spec, "hub", name=name, config=config or None)


def _local_source(spec: str, path: Path) -> Source:
    files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
    kinds: dict[str, list[Path]] = {}
    for f in files:
        suffix = f.suffix.lower()
        if suffix in STRUCTURED_KINDS:
            kinds.setdefault(STRUCTURED_KINDS[suffix], []).append(f)
        elif suffix in TEXT_SUFFIXES or (not path.is_dir() and suffix not in STRUCTURED_KINDS):
            kinds.setdefault("text", []).append(f)
    if not kinds:
        accepted = ", ".join(sorted(TEXT_SUFFIXES | set(STRUCTURED_KINDS)))
        raise DataError(f"{spec}: no data files found (accepted suffixes: {accepted})")
    if len(kinds) > 1:
        raise DataError(f"{spec}: mixes file kinds ({', '.join(sorted(kinds))}); prepare one kind per folder")
    kind, kind_files = next(iter(kinds.items()))
    return Source(spec, kind, files=tuple(kind_files))


def iter_texts(source: str | Source, text_field: str = "text", split: str = "train") -> Iterator[str]:
    """Yield the documents of `source` in a fixed order (for hub datasets, the hub's order).

    `text_field` names the column holding text in JSONL/Parquet/CSV records and hub datasets;
    `split` picks the hub split. Empty documents are skipped.
    """
    src = parse_source(source) if isinstance(source, str) else source
    if src.kind == "stdlib":
        for f in stdlib_files(src.modules):
            # NOTE: a few stdlib test files are deliberately not UTF-8; keep them, replacing bad bytes.
            text = f.read_bytes().decode("utf-8", errors="replace")
            if text.strip():
                yield text
    elif src.kind == "text":
        for f in src.files:
            text = f.read_bytes().decode("utf-8", errors="replace")
            if text.strip():
                yield text
    else:
        yield from _iter_dataset(src, text_field, split)


def _iter_dataset(src: Source, text_field: str, split: str) -> Iterator[str]:
    try:
        import datasets
        from datasets.exceptions import DatasetsError
    except ImportError as exc:
        raise DataError(
            f"{src.spec}: reading {src.kind} data needs the `datasets` package (pip install 'iclaw-llm[data]')"
        ) from exc
    datasets.disable_progress_bars()
    checked = False
    try:
        if src.kind == "hub":
            ds = datasets.load_dataset(src.name, src.config, split=split, streaming=True)
        else:
            ds = datasets.load_dataset(src.kind, data_files=[str(f) for f in src.files], split="train", streaming=True)
        for row in ds:
            if not checked and text_field not in row:
                raise DataError(
                    f"{src.spec}: records have no field {text_field!r}; available fields: "
                    f"{', '.join(map(str, row))} (pass --text-field NAME)"
                )
            checked = True
            text = row[text_field]
            if isinstance(text, str) and text.strip():
                yield text
    except (FileNotFoundError, DatasetsError) as exc:
        raise DataError(f"{src.spec}: dataset not found ({_first_line(exc)})") from exc
    except (ConnectionError, OSError) as exc:
        raise DataError(
            f"{src.spec}: cannot reach the Hugging Face Hub ({_first_line(exc)}); offline, use a local file or `stdlib`"
        ) from exc
    except (ValueError, TypeError, KeyError) as exc:
        # pyarrow's ArrowInvalid and json's JSONDecodeError are ValueErrors: a malformed file.
        raise DataError(f"{src.spec}: cannot read records ({type(exc).__name__}: {_first_line(exc)})") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
