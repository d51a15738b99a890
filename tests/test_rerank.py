"""The LLM reranker (rerank = "llm") against a stub OpenAI-compatible endpoint."""

from __future__ import annotations

from conftest import make_settings
from openai_stub import StubLLM
from rag.index import PaperIndex
from rag.papers import Paper
from rag.rerank import parse_ranking
from rag.retrieve import retrieve

QUERY = "neural networks for molecules"
PAPERS = [
    Paper("m1", "Graph neural networks for molecular property prediction",
          "Message passing networks predict properties of molecules from their graphs."),
    Paper("m2", "Neural networks that generate molecules",
          "A variational autoencoder generates valid molecules for drug design."),
    Paper("m3", "Molecular dynamics with learned potentials",
          "Neural network potentials speed up molecular dynamics simulations of proteins."),
]  # fmt: skip


def test_reply_numbers_become_positions_without_repeats_or_strays():
    assert parse_ranking("2, 2, 9, 1 and 0", 3) == [1, 0]
    assert parse_ranking("None of them.", 3) == []


def test_llm_order_wins_and_unranked_papers_follow(tmp_path):
    with StubLLM(lambda messages: "3, 1") as stub:
        settings = make_settings(
            tmp_path, rerank="llm", rerank_candidates=3, llm="openai", openai_api_key="t",
            openai_base_url=stub.base_url, openai_model="stub", llm_max_retries=0,
        )  # fmt: skip
        index = PaperIndex(settings)
        index.add_papers(PAPERS)
        reranked = retrieve(index, QUERY, 3)
    prompt = stub.requests[0]["messages"][0]["content"]
    listed = [line.split("] ", 1)[1] for line in prompt.splitlines() if line.startswith("[")]
    by_title = {paper.title: paper.id for paper in PAPERS}
    fused_order = [by_title[title] for title in listed]
    assert QUERY in prompt and sorted(fused_order) == ["m1", "m2", "m3"]
    assert [s.paper.id for s in reranked] == [fused_order[2], fused_order[0], fused_order[1]]
    assert [s.score for s in reranked] == sorted((s.score for s in reranked), reverse=True)
