"""Hybrid retrieval: fusion, paper-level ranking, batch mode, reranking; against real Chroma."""

from __future__ import annotations

import pytest

from conftest import make_settings
from rag.cli import main
from rag.embedder import resolve_model_path
from rag.filters import RetrievalFilters
from rag.index import PaperIndex
from rag.papers import Paper
from rag.retrieve import Hit, retrieve, retrieve_batch, rrf, score_fusion

# A paraphrase target that shares no word stem with its query (BM25 cannot see it) and
# a rare-identifier target whose abstract is about something else (MiniLM blurs it).
PARAPHRASE = Paper(
    "target-para", "End-to-end visuomotor policies for autonomous vehicles",
    "A convolutional network maps raw frames from a front-facing sensor directly to wheel "
    "angle commands, trained by imitating human drivers on highways.",
)  # fmt: skip
RARE_TERM = Paper(
    "target-rare", "Coarse-grained folding pathways of small proteins",
    "We simulate folding pathways of small globular proteins with a coarse-grained force "
    "field. Contact maps along the trajectories reveal an early hydrophobic collapse followed "
    "by slow native-state search. Free-energy landscapes are reconstructed with Markov state "
    "models. Timings are reported on the TDR-315H suite.",
)  # fmt: skip
QUERIES = {
    "target-para": "teaching a car to drive itself from what it sees",
    "target-rare": "TDR-315H benchmark",
}
DISTRACTORS = [
    ("Counting wildlife in camera trap images", "Camera traps collect millions of pictures; we count animals per image from pixels with a detector and learn from few labels."),
    ("Forecasting used cars prices", "We fit gradient boosted trees to forecast the resale price of second-hand cars from listings."),
    ("A benchmark suite for tabular data", "We introduce a benchmark of tabular datasets and evaluate gradient boosting and neural networks on it."),
    ("Benchmarking large language models on reasoning", "A benchmark of reasoning problems on which we compare large language models."),
    ("Learning robot grasping from demonstrations", "Robots learn to grasp objects by imitating human demonstrations with visual observations."),
    ("Lidar point cloud segmentation", "Point clouds from lidar scanners are segmented into road, vehicles and pedestrians with a sparse convolutional network."),
    ("Protein structure prediction with attention", "Attention networks predict the three-dimensional structure of proteins from amino acid sequences."),
    ("Graph neural networks for molecules", "Message passing networks predict molecular properties from atom graphs."),
    ("Speech recognition with transformers", "An encoder-decoder transformer transcribes spoken audio into text."),
    ("Federated learning under privacy constraints", "Clients train a shared model without sending raw data to a server, with differential privacy."),
    ("Reinforcement learning for board games", "Self-play with tree search reaches superhuman strength in chess and go."),
    ("Weather forecasting with neural operators", "Neural operators learn global atmospheric dynamics for medium-range weather prediction."),
    ("Machine translation for low-resource languages", "Back-translation and multilingual pretraining improve translation for languages with little parallel text."),
    ("Image generation with diffusion models", "Denoising diffusion models generate high-fidelity images by reversing a noising process."),
    ("Anomaly detection in network traffic", "Autoencoders flag unusual flows in enterprise network traffic."),
    ("Recommender systems with implicit feedback", "Matrix factorisation on clicks and views ranks products for each user."),
    ("Crop yield prediction from satellite imagery", "Multispectral satellite images and weather records predict crop yields per county."),
    ("Quantum error correction codes", "Surface codes protect logical qubits against local noise."),
    ("Traffic flow prediction on road networks", "Spatio-temporal graph networks forecast traffic speed on highways from loop detectors."),
    ("A benchmark for code generation models", "We release a benchmark of programming tasks and measure how often generated code passes unit tests."),
    ("Benchmarking object detectors under distribution shift", "A benchmark of corrupted images shows detectors degrade under shift."),
    ("A benchmark for soil moisture retrieval from satellite radar", "We compare retrieval algorithms for surface soil moisture from radar backscatter on a common benchmark."),
    ("Benchmarking hydrological models of soil water", "Hydrological models of soil water content are benchmarked against field observations."),
    ("A benchmark dataset of field sensor readings", "Readings from in-situ sensors in farms form a benchmark for imputation methods."),
    ("Pedestrian detection at night", "Thermal and visible images are fused to detect pedestrians in darkness."),
]  # fmt: skip
PAPERS = [PARAPHRASE, RARE_TERM] + [
    Paper(f"d-{n:02d}", title, abstract) for n, (title, abstract) in enumerate(DISTRACTORS)
]


@pytest.fixture(scope="module")
def fusion_index(tmp_path_factory) -> PaperIndex:
    index = PaperIndex(make_settings(tmp_path_factory.mktemp("fusion")))
    index.add_papers(PAPERS)
    return index


def found_at_3(index: PaperIndex, mode: str) -> set[str]:
    """Which of the two targets the given retrieval mode ranks in its top 3."""
    index.settings.retrieval_mode = mode
    try:
        return {
            target
            for target, query in QUERIES.items()
            if target in [s.paper.id for s in retrieve(index, query, 3)]
        }
    finally:
        index.settings.retrieval_mode = "hybrid"


def test_default_fusion_finds_what_either_retriever_alone_misses(fusion_index):
    assert fusion_index.settings.fusion == "score"  # the shipped default
    assert found_at_3(fusion_index, "dense") == {"target-para"}  # blurs the identifier
    assert found_at_3(fusion_index, "lexical") == {"target-rare"}  # no shared words
    assert found_at_3(fusion_index, "hybrid") == {"target-para", "target-rare"}


def test_fusion_arithmetic():
    dense = [Hit("a", 0.9), Hit("b", 0.5), Hit("c", 0.1)]
    lexical = [Hit("c", 12.0), Hit("d", 4.0)]
    assert rrf([dense, lexical], [1.0, 1.0], 60) == pytest.approx(
        {"a": 1 / 61, "b": 1 / 62, "c": 1 / 63 + 1 / 61, "d": 1 / 62}
    )
    assert score_fusion([dense, lexical], [1.0, 1.0]) == pytest.approx(
        {"a": 1.0, "b": 0.5, "c": 1.0, "d": 0.0}
    )


def test_a_paper_with_many_chunks_is_returned_once(settings):
    long_body = " ".join(
        f"Section {n}: the sparse mixture-of-experts router balances load across experts."
        for n in range(120)
    )
    index = PaperIndex(make_settings(settings.index.parent, chunk_size=128, chunk_overlap=16))
    index.add_papers(
        [Paper("moe", "Routing in sparse mixture-of-experts", "A study of expert routing.",
               authors="Ada Byron", body=long_body), *PAPERS[:4]]
    )  # fmt: skip
    assert index.chunk_count() > index.paper_count() + 5
    query = "mixture-of-experts router load balancing"
    ids = [s.paper.id for s in retrieve(index, query, 5)]
    assert ids[0] == "moe" and len(ids) == len(set(ids))
    # the chunk-level dense path honours filters too
    assert [s.paper.id for s in retrieve(index, query, 5, RetrievalFilters(author="byron"))] == ["moe"]
    assert retrieve(index, query, 5, RetrievalFilters(author="nobody")) == []


def test_blank_query_and_empty_index_return_nothing(fusion_index, empty_index):
    assert retrieve(fusion_index, "   ") == []
    assert retrieve(empty_index, "anything") == []
    assert retrieve_batch(empty_index, [("q1", "anything")], 5) == {"q1": []}


def test_batch_mode_ranks_like_single_queries_and_writes_a_trec_run(fusion_index, tmp_path):
    batch = retrieve_batch(fusion_index, list(QUERIES.items()), 5)
    for qid, query in QUERIES.items():
        single = [s.paper.id for s in retrieve(fusion_index, query, 5)]
        assert [s.paper.id for s in batch[qid]] == single
    queries = tmp_path / "queries.jsonl"
    queries.write_text(
        "".join(f'{{"_id": "{qid}", "text": "{text}"}}\n' for qid, text in QUERIES.items())
    )
    run = tmp_path / "run.txt"
    index_dir = str(fusion_index.settings.index)
    assert main(["retrieve", "--index", index_dir, "--queries", str(queries),
                 "--run-out", str(run), "-k", "3", "--run-tag", "hyb"]) == 0  # fmt: skip
    lines = [line.split() for line in run.read_text().splitlines()]
    assert len(lines) == 6
    assert [(qid, q0, rank, tag) for qid, q0, _, rank, _, tag in lines[:3]] == [
        ("target-para", "Q0", "1", "hyb"), ("target-para", "Q0", "2", "hyb"),
        ("target-para", "Q0", "3", "hyb"),
    ]  # fmt: skip
    assert [line[2] for line in lines[:3]] == [s.paper.id for s in batch["target-para"][:3]]


def test_cross_encoder_reranks_the_fused_head(fusion_index):
    """A CrossEncoder from a local directory (the bundled MiniLM with a fresh scoring head)."""
    query = QUERIES["target-para"]
    head = {s.paper.id for s in retrieve(fusion_index, query, 4)}
    fusion_index.settings.rerank = str(resolve_model_path("bundled"))
    fusion_index.settings.rerank_candidates = 4
    try:
        reranked = retrieve(fusion_index, query, 4)
    finally:
        fusion_index.settings.rerank = "off"
    assert {s.paper.id for s in reranked} == head
    scores = [s.score for s in reranked]
    assert scores == sorted(scores, reverse=True)


def test_missing_cross_encoder_is_one_clear_error(fusion_index, capsys, monkeypatch):
    monkeypatch.setenv("RAG_RERANK", "/nonexistent/cross-encoder")
    index_dir = str(fusion_index.settings.index)
    assert main(["retrieve", "protein folding", "--index", index_dir]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: rerank: cross-encoder directory not found: /nonexistent/cross-encoder (use 'off')"
    ]


# --- full text: body passages of PDFs (rag/pdf.py → index → both retrievers) -------------
@pytest.fixture(scope="module")
def mixed_index(tmp_path_factory):
    """The bundled abstracts plus one three-page PDF: the mixed corpus in which dense
    search uses per-paper vectors and must still reach the PDF's body."""
    from rag.ingest import ingest_paths
    from rag.settings import BUNDLED_CORPUS
    from test_pdf import make_paper_pdf

    tmp = tmp_path_factory.mktemp("mixed")
    index = PaperIndex(make_settings(tmp))
    report = ingest_paths(index, [BUNDLED_CORPUS, make_paper_pdf(tmp / "glimmer.pdf")])
    assert report.ok
    return index


def test_a_body_only_fact_is_found_by_both_retrievers_in_a_mixed_corpus(mixed_index):
    from rag.retrieve import _shape, dense_search, embed_queries, lexical_search
    from test_pdf import BODY_QUESTION

    shape = _shape(mixed_index)
    assert shape.paper_vectors and shape.body_chunks  # the mixed-corpus path is under test
    lexical = lexical_search(mixed_index, BODY_QUESTION, 5)
    assert lexical[0].paper_id == "2401.04567"
    assert "417 epochs" in lexical[0].passages[0][0].text
    dense = dense_search(mixed_index, embed_queries(mixed_index, [BODY_QUESTION])[0], 5)
    assert "2401.04567" in [hit.paper_id for hit in dense]
    best = next(hit for hit in dense if hit.paper_id == "2401.04567")
    assert any("417 epochs" in passage.text for passage, _ in best.passages)


def test_sources_carry_the_matched_body_passage_with_its_page(mixed_index):
    from test_pdf import BODY_QUESTION

    sources = retrieve(mixed_index, BODY_QUESTION, 5)
    assert sources[0].paper.id == "2401.04567"
    passage = sources[0].passages[0]
    assert "417 epochs" in passage.text
    assert (passage.kind, passage.page, passage.location) == ("body", 3, "§ 3 Experiments, p. 3")
    assert sources[0].similarity is not None  # the gates see the body chunk's cosine
    others = [source for source in sources[1:] if source.paper.id != "2401.04567"]
    assert all(source.passages == [] for source in others)  # abstracts have no body passages


def test_abstract_questions_still_work_and_filters_apply_per_paper(mixed_index):
    from test_pdf import BODY_QUESTION

    from rag.settings import BUNDLED_CORPUS

    by_author = RetrievalFilters(author="quarrington")
    sources = retrieve(mixed_index, BODY_QUESTION, 5, filters=by_author)
    assert [source.paper.id for source in sources] == ["2401.04567"]
    assert sources[0].passages[0].page == 3
    seed_only = RetrievalFilters(source=str(BUNDLED_CORPUS))
    found = retrieve(mixed_index, BODY_QUESTION, 5, filters=seed_only)
    assert found and "2401.04567" not in [source.paper.id for source in found]
    lottery = retrieve(mixed_index, "lottery ticket hypothesis sparse subnetworks", 3)
    assert lottery and lottery[0].paper.id != "2401.04567"
