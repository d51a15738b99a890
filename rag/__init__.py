"""Cited question answering over research papers, fully offline by default.

Importing the package pins every library that would otherwise reach the
internet to its bundled or offline mode, before any of them is imported.
"""

import os
from importlib.util import find_spec
from pathlib import Path


def _pin_offline_environment() -> None:
    """Models, tokenizer encodings and telemetry must never touch the network."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # no "Loading weights" bars
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    spec = find_spec("llama_index.core")
    if spec is not None and spec.submodule_search_locations:
        static = Path(next(iter(spec.submodule_search_locations))) / "_static"
        os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(static / "tiktoken_cache"))
        os.environ.setdefault("NLTK_DATA", str(static / "nltk_cache"))


_pin_offline_environment()
