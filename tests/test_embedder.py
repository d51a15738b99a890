"""The bundled embedder: loaded from the package, once per process even under races."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from rag.embedder import _load_embedder, load_embedder, resolve_model_path


def test_concurrent_first_loads_share_one_model():
    """The UI's warm-up thread and an early question both ask for the model: one load."""
    _load_embedder.cache_clear()
    with ThreadPoolExecutor(max_workers=2) as pool:
        first, second = pool.map(lambda _: load_embedder("bundled", 16), range(2))
    assert first is second
    assert len(first.get_text_embedding("sparse attention")) == 384


def test_missing_model_directory_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        resolve_model_path(str(tmp_path / "nope"))
