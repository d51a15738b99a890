"""The exported model's forward pass (rag.encoder): what the ingest's embedding process
runs, light enough to import without llama-index."""

import subprocess
import sys

import numpy as np

from rag.embedder import encoder_spec, load_embedder
from rag.encoder import embed_in_child, start_child
from tests.conftest import make_settings

TEXTS = ["Fin regrowth in zebrafish depends on blastema cells.", "quokka", "word " * 400]


def test_the_child_entry_points_give_the_embedders_vectors_as_float32(tmp_path):
    settings = make_settings(tmp_path)
    start_child(encoder_spec(settings))
    vectors = embed_in_child(TEXTS)
    assert vectors.dtype == np.float32 and vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors.tolist() == load_embedder(settings).get_text_embedding_batch(TEXTS)


def test_importing_the_encoder_pulls_in_neither_llama_index_nor_torch():
    """(`rag` finds llama-index's bundled caches by spec, which loads only its empty
    namespace package.)"""
    code = ("import sys, rag.encoder; "
            "print([m for m in sys.modules if m.startswith(('llama_index.', 'torch'))])")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "[]"  # fmt: skip
