"""The evidence gates: absent key terms, sentence and title evidence (rag/abstain.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_settings

from rag.answer.gates import Evidence, absent_words, judge_evidence, meaning_shift
from rag.answer import Answerer
from rag.embedder import load_local_embedder
from rag.prompts import SENTINEL
from rag.answer.support import CachedEmbedder

KNOWN = {"how", "segment", "vision", "transform", "brain", "scan", "accur", "can"}


@pytest.fixture(scope="module")
def embed() -> CachedEmbedder:
    return CachedEmbedder(load_local_embedder("bundled", 16).get_text_embedding_batch)


def test_absent_words_are_those_with_a_term_no_paper_contains():
    question = "How accurately can vision transformers segment tumors in brain scans?"
    assert absent_words(question, KNOWN.__contains__) == ["tumors"]


def test_a_meaning_carrying_absent_word_shifts_the_question_more_than_filler(embed):
    question = "How well do CNNs grade diabetic retinopathy from fundus photographs?"
    assert meaning_shift(question, ["retinopathy"], embed) > 2 * meaning_shift(
        question, ["well"], embed
    )
    assert meaning_shift(question, [], embed) == 0.0
    assert meaning_shift("Sourdough?", ["Sourdough?"], embed) == 1.0


def judged(**signals) -> tuple[str, float]:
    settings = make_settings(Path("/nonexistent"))
    evidence = Evidence(best_similarity=0.5, coverage=0.6, **signals)
    return judge_evidence(evidence, settings)


def test_an_absent_key_term_abstains_and_names_the_term():
    reason, _ = judged(best_sentence=0.55, absent_words=["retinopathy"], absent_shift=0.3)
    assert "'retinopathy'" in reason


def test_a_close_sentence_answers_despite_absent_words():
    assert judged(best_sentence=0.7, absent_words=["spammers"], absent_shift=0.3)[0] == ""


def test_absent_filler_words_do_not_abstain():
    reason, floor = judged(best_sentence=0.55, absent_words=["versus"], absent_shift=0.01)
    assert reason == "" and floor > 0


def test_weak_sentence_evidence_abstains_unless_a_title_matches():
    assert "no source sentence" in judged(best_sentence=0.3, title_match=0.2)[0]
    assert judged(best_sentence=0.3, title_match=0.8) == ("", 0.0)


def test_weak_retrieval_abstains_before_sentence_evidence_counts():
    settings = make_settings(Path("/nonexistent"))
    evidence = Evidence(best_similarity=0.05, coverage=0.6, best_sentence=0.9)
    assert "best match scored 0.05" in judge_evidence(evidence, settings)[0]


def test_a_bare_name_a_retrieved_paper_contains_passes_the_retrieval_gate():
    """'What is NCLaw?' embeds far from everything, but the paper that names it is found."""
    settings = make_settings(Path("/nonexistent"))
    named = Evidence(best_similarity=0.14, coverage=1.0, best_sentence=0.6, named_found=True)
    assert judge_evidence(named, settings)[0] == ""
    unnamed = Evidence(best_similarity=0.14, coverage=1.0, best_sentence=0.6)
    assert "best match scored 0.14" in judge_evidence(unnamed, settings)[0]


def test_uncovered_on_domain_question_abstains_on_the_seed_corpus(seed_index, tmp_path):
    """The sentences of half-related papers come close; the missing key terms decide."""
    answerer = Answerer(seed_index, make_settings(tmp_path, llm="extractive"))
    result = answerer.ask("How well do CNNs grade diabetic retinopathy from fundus photographs?")
    assert result.abstained and result.answer == SENTINEL and not result.citations
    assert any("'retinopathy'" in note for note in result.notes)
