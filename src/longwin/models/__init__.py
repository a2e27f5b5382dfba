"""Resolve a model reference (alias, folder, .gguf file, cached Hugging Face id) to a loaded model.

Importing this package is cheap: torch and transformers load only when a model is resolved.
"""

from longwin.models.aliases import ALIASES, Alias
from longwin.models.gguf_convert import cache_root, convert_gguf
from longwin.models.resolve import check_model_folder, load_model, model_path

__all__ = ["ALIASES", "Alias", "cache_root", "check_model_folder", "convert_gguf", "load_model", "model_path"]
