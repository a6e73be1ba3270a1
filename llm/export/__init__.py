"""Exporters that write our checkpoints in other ecosystems' formats (Hugging Face transformers)."""

from llm.export.hf import export_hf

__all__ = ["export_hf"]
