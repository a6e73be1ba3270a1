"""Importers that turn foreign model files (GGUF, Hugging Face folders) into our checkpoints."""

from llm.importers.gguf import import_gguf
from llm.importers.hf import import_hf

__all__ = ["import_gguf", "import_hf"]
