"""The embedders: the bundled model (loaded once per process even under races) and any
OpenAI-compatible embeddings endpoint, tested against a stub serving the bundled vectors."""

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from rag.embedder import (
    EmbedderError, EmbeddingProcess, _load_local, embedder_label, encoder_spec, load_embedder,
    resolve_model_path,
)  # fmt: skip
from rag.index import IndexMismatchError, PaperIndex
from rag.papers import Paper
from rag.retrieve import retrieve
from tests.conftest import make_settings
from tests.embeddings_stub import StubEmbeddings

PAPERS = [
    Paper("e1", "Zebrafish fin regeneration", "Fin regrowth in zebrafish depends on blastema cells."),
    Paper("e2", "Quokka population surveys", "Camera traps counted quokkas on Rottnest island."),
    Paper("e3", "Sparse attention for long documents", "Sliding windows make attention linear."),
]


def test_concurrent_first_loads_share_one_model(tmp_path):
    """The UI's warm-up thread and an early question both ask for the model: one load."""
    _load_local.cache_clear()
    settings = make_settings(tmp_path, embed_backend="torch", embed_batch_size=16)
    with ThreadPoolExecutor(max_workers=2) as pool:
        first, second = pool.map(lambda _: load_embedder(settings), range(2))
    assert first is second
    assert len(first.get_text_embedding("sparse attention")) == 384


def test_missing_model_directory_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        resolve_model_path(str(tmp_path / "nope"))


def test_remote_endpoint_builds_a_searchable_index_with_the_same_vectors(tmp_path):
    with StubEmbeddings(failures=[429]) as stub:
        settings = make_settings(
            tmp_path, embed_endpoint=stub.base_url, embed_api_key="embed-key", embed_batch_size=2
        )
        index = PaperIndex(settings)
        assert index.add_papers(PAPERS).added == 3
        # batched (2 texts per request), and the 429 was retried rather than failing the ingest
        assert all(len(request["input"]) <= 2 for request in stub.requests)
        assert stub.headers[-1]["authorization"] == "Bearer embed-key"
        remote = np.asarray(index.embedder.get_text_embedding_batch(["quokka counts"]))[0]
        local = np.asarray(load_embedder(make_settings(tmp_path / "l", embed_backend="torch"))
                       .get_text_embedding("quokka counts"))  # fmt: skip
        assert abs(np.linalg.norm(remote) - 1.0) < 1e-4  # normalised although the server is not
        assert float(remote @ local) > 0.999
        hits = retrieve(index, "how many small marsupials live on an island", 1)
        assert hits[0].paper.id == "e2" and hits[0].similarity is not None
        assert index.embedder_label == "all-MiniLM-L6-v2 (endpoint)"
        # the same service under another name (a replica, another machine's view of it)
        # is the same embedder: the index opens and answers
        other_name = stub.base_url.replace("127.0.0.1", "localhost")
        again = PaperIndex(settings.model_copy(update={"embed_endpoint": other_name}))
        assert retrieve(again, "zebrafish regrowth", 1)[0].paper.id == "e1"
    # the index remembers its embedder: the bundled model may not search it
    with pytest.raises(IndexMismatchError, match="built with embedder"):
        PaperIndex(make_settings(tmp_path))


def test_remote_endpoint_down_is_one_line(tmp_path):
    with StubEmbeddings() as stub:
        base_url = stub.base_url
    settings = make_settings(tmp_path, embed_endpoint=base_url, embed_max_retries=0)
    with pytest.raises(EmbedderError, match=f"embeddings endpoint {base_url}"):
        PaperIndex(settings).add_papers(PAPERS)


@pytest.mark.parametrize("failures, ok", [(2, True), (3, False)])
def test_remote_retries_are_bounded_by_embed_max_retries(tmp_path, failures, ok):
    """503s are retried (with backoff) up to embed_max_retries, then reported in one line
    naming the endpoint; the LLM's retry setting plays no part."""
    with StubEmbeddings(failures=[503] * failures) as stub:
        settings = make_settings(tmp_path, embed_endpoint=stub.base_url, embed_max_retries=2,
                                 llm_max_retries=0)  # fmt: skip
        embedder = load_embedder(settings)
        if ok:
            assert len(embedder.get_text_embedding("quokka")) == 384
        else:
            with pytest.raises(EmbedderError, match=f"embeddings endpoint {stub.base_url}"):
                embedder.get_text_embedding("quokka")
        assert len(stub.requests) == 3  # the first try and two retries, never more


def test_cli_ingest_with_endpoint_down_has_no_traceback(tmp_path):
    data = tmp_path / "p.jsonl"
    data.write_text('{"id": "x1", "title": "A title", "abstract": "Some abstract text here."}\n')
    env = {**os.environ, "RAG_INDEX": str(tmp_path / "idx"), "RAG_EMBED_MAX_RETRIES": "0",
           "RAG_EMBED_ENDPOINT": "http://127.0.0.1:9/v1"}  # fmt: skip
    process = subprocess.run(
        [sys.executable, "-m", "rag.cli", "ingest", str(data)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert process.returncode == 1
    assert "Traceback" not in process.stderr
    assert process.stderr.strip().splitlines()[-1].startswith(
        "error: embeddings endpoint http://127.0.0.1:9/v1"
    )


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_exported_backends_give_the_torch_vectors(tmp_path, backend):
    """Same weights, same tokenizer limits, same pooling: the vectors agree, so an index
    built on one backend is searched by another (same label)."""
    texts = ["Sliding windows make attention linear.", "quokka", "word " * 400]  # > 256 pieces
    torch_settings = make_settings(tmp_path, embed_backend="torch")
    exported = make_settings(tmp_path, embed_backend=backend, model_cache_dir=tmp_path / "models")
    reference = np.asarray(load_embedder(torch_settings).get_text_embedding_batch(texts))
    vectors = np.asarray(load_embedder(exported).get_text_embedding_batch(texts))
    assert np.min(np.sum(reference * vectors, axis=1)) > 0.9999
    assert embedder_label(exported) == embedder_label(torch_settings)
    assert list((tmp_path / "models").glob("*/model.onnx"))  # exported once, cached


def test_int8_is_its_own_embedder_close_to_the_fp32_vectors(tmp_path):
    """The default backend: fused, dynamically quantised int8. Its vectors differ a little
    from fp32 (own index label), but stay close enough that rankings barely move."""
    texts = [paper.abstract for paper in PAPERS] + ["quokka", "word " * 400]
    settings = make_settings(tmp_path, embed_backend="onnx-int8")
    assert embedder_label(settings).endswith("int8-fused")
    reference = np.asarray(load_embedder(make_settings(tmp_path, embed_backend="openvino"))
                           .get_text_embedding_batch(texts))  # fmt: skip
    vectors = np.asarray(load_embedder(settings).get_text_embedding_batch(texts))
    assert np.min(np.sum(reference * vectors, axis=1)) > 0.98


@pytest.mark.parametrize("backend", ["onnx-int8", "openvino"])
def test_exported_backends_embed_from_several_threads_at_once(tmp_path, backend):
    """The UI runs two answers at once, each embedding its sentences: no "busy" errors,
    and every thread gets the vectors a lone call gives."""
    embed = load_embedder(make_settings(tmp_path, embed_backend=backend))
    texts = [[paper.abstract, f"question {n}"] for n, paper in enumerate(PAPERS * 4)]
    alone = [np.asarray(embed.get_text_embedding_batch(batch)) for batch in texts]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda batch: np.asarray(embed.get_text_embedding_batch(batch)), texts))
    for one, other in zip(alone, together):
        assert np.allclose(one, other, atol=1e-5)


def test_static_int8_stays_close_to_the_fp32_vectors(tmp_path):
    """NNCF's calibrated int8 model (embed_backend openvino-int8): vectors within 0.02
    of the fp32 model's on natural text, cached once, and labelled apart from fp32 and from
    dynamic int8. (Degenerate input such as one word repeated 400 times drifts further,
    ~0.9: its activations lie outside the calibrated ranges.)"""
    long_text = " ".join(f"{paper.title}. {paper.abstract}" for paper in PAPERS * 8)  # > 256 pieces
    texts = ["Sliding windows make attention linear.", "quokka", long_text]
    settings = make_settings(tmp_path, embed_backend="openvino-int8")
    reference = np.asarray(load_embedder(make_settings(tmp_path, embed_backend="openvino"))
                           .get_text_embedding_batch(texts))  # fmt: skip
    vectors = np.asarray(load_embedder(settings).get_text_embedding_batch(texts))
    cosines = np.sum(reference * vectors, axis=1)
    assert np.min(cosines) > 0.98 and np.max(cosines) < 0.99999  # quantised, not a copy
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert list(settings.model_cache_dir.glob("*/model-int8-static-*.xml"))
    labels = {embedder_label(make_settings(tmp_path, embed_backend=backend))
              for backend in ("openvino", "onnx-int8", "openvino-int8")}  # fmt: skip
    assert len(labels) == 3


@pytest.mark.parametrize(("built", "configured"), [("openvino", "openvino-int8"),
                                                    ("openvino-int8", "torch")])  # fmt: skip
def test_index_keeps_the_backend_that_built_it(tmp_path, built, configured):
    """A default that changes between releases must not orphan existing indexes: an index
    built by another local backend of the same model is searched and extended with the
    vectors it holds."""
    index = PaperIndex(make_settings(tmp_path, embed_backend=built))
    index.add_papers(PAPERS[:2])
    label = index.embedder_label
    reopened = PaperIndex(make_settings(tmp_path, embed_backend=configured))
    assert reopened.settings.embed_backend == built and reopened.embedder_label == label
    assert reopened.add_papers(PAPERS[2:]).added == 1
    assert retrieve(reopened, "linear attention over long documents", 1)[0].paper.id == "e3"
    assert PaperIndex(make_settings(tmp_path)).paper_count() == 3  # the default opens it too


def test_int8_vectors_do_not_depend_on_the_batch(tmp_path):
    """Dynamic int8 scales activations per run: a text embedded with others must still get
    the vector it gets alone (eval batches, the UI and the answer cache agree)."""
    embed = load_embedder(make_settings(tmp_path, embed_backend="onnx-int8"))
    texts = [paper.abstract for paper in PAPERS] + ["quokka", "word " * 400]
    together = np.asarray(embed.get_text_embedding_batch(texts))
    alone = np.asarray([embed.get_text_embedding(text) for text in texts])
    assert np.array_equal(together, alone)


def test_a_dead_embedding_process_is_one_clear_error(tmp_path):
    """The ingest's embedding child killed (say, by the OOM killer): the next batch
    fails with one line, not a BrokenProcessPool traceback."""
    settings = make_settings(tmp_path)
    child = EmbeddingProcess(encoder_spec(settings))
    try:
        texts = [paper.abstract for paper in PAPERS]
        assert np.array_equal(
            np.asarray(child.embed_later(texts)(), np.float32),
            np.asarray(load_embedder(settings).get_text_embedding_batch(texts), np.float32),
        )
        for process in list(child._pool._processes.values()):
            process.kill()
            process.join(10)
        with pytest.raises(EmbedderError, match="embedding process stopped unexpectedly"):
            child.embed_later(texts)()
    finally:
        child.close()
