"""Support evidence with the real bundled embedder: quoted, paraphrased, and unsupported claims."""

from __future__ import annotations

import pytest

from rag.answer.evidence import split_sentences
from rag.answer.question import analyse
from rag.answer.support import (
    CachedEmbedder,
    SharedVectors,
    answer_sentences,
    is_quote,
    lexical_support,
    question_coverage,
    shared_vectors,
    support_sentences,
)
from rag.embedder import load_local_embedder

ABSTRACTS = [
    "We study pruning of neural networks. We find that dense networks contain sparse "
    "subnetworks that train to full accuracy from their original initialization.",
    "We release a corpus of Hindi news with named entity labels. The dataset has 100k sentences.",
]


DOCUMENTS = [[(sentence, "abstract") for sentence in split_sentences(text)] for text in ABSTRACTS]


@pytest.fixture(scope="module")
def embed() -> CachedEmbedder:
    return CachedEmbedder(load_local_embedder("bundled", 16).get_text_embedding_batch)


def test_answer_sentences_carry_their_markers():
    sentences = answer_sentences("Dense nets hide sparse ones [1]. The corpus is Hindi news [2][1].")
    assert [numbers for _, numbers in sentences] == [[1], [2, 1]]


def test_quoted_claim_is_fully_supported(embed):
    answer = "We find that dense networks contain sparse subnetworks that train to full accuracy [1]."
    [sentence] = support_sentences(answer, DOCUMENTS, embed, 0.7)
    assert sentence.supported and sentence.support >= 0.9
    assert sentence.evidence.startswith("We find that dense networks")
    assert sentence.evidence_source == 1


def test_claim_cited_to_the_wrong_paper_is_flagged(embed):
    answer = "Dense networks contain sparse subnetworks that train to full accuracy [2]."
    [sentence] = support_sentences(answer, DOCUMENTS, embed, 0.7)
    assert not sentence.supported
    assert sentence.support < 0.7 and sentence.evidence_source == 2


def test_uncited_sentence_has_no_support(embed):
    [sentence] = support_sentences("Pruning is popular these days.", DOCUMENTS, embed, 0.7)
    assert sentence.citations == [] and sentence.support is None and not sentence.supported


def test_citation_beyond_the_sources_is_ignored(embed):
    [sentence] = support_sentences("A claim about pruning [5].", DOCUMENTS, embed, 0.7)
    assert sentence.support is None and not sentence.supported


def test_cached_embedder_embeds_each_text_once():
    calls: list[list[str]] = []

    def fake(texts):
        calls.append(list(texts))
        return [[float(len(text))] for text in texts]

    cached = CachedEmbedder(fake)
    cached(["a", "bb", "a"])
    cached(["bb", "ccc"])
    assert calls == [["a", "bb"], ["ccc"]]


def test_shared_vectors_serve_later_answers_and_stay_bounded():
    calls: list[list[str]] = []

    def fake(texts):
        calls.append(list(texts))
        return [[float(len(text))] for text in texts]

    shared = SharedVectors(capacity=2)
    CachedEmbedder(fake, shared)(["a", "bb"])
    CachedEmbedder(fake, shared)(["bb", "a"])  # a later answer: nothing embedded again
    assert calls == [["a", "bb"]]
    CachedEmbedder(fake, shared)(["ccc"])  # pushes out the least recently used ("bb")
    assert len(shared) == 2 and shared.get("bb") is None and shared.get("a") is not None


def test_one_shared_cache_per_embedder():
    first, second = object(), object()
    assert shared_vectors(first, 5) is shared_vectors(first, 5)
    assert shared_vectors(first, 5) is not shared_vectors(second, 5)


def test_lexical_support_and_coverage():
    assert lexical_support("sparse subnetworks train", ABSTRACTS[0]) == 1.0
    assert question_coverage("What is the capital of Australia?", ABSTRACTS) == 0.0
    assert question_coverage("Is there a Hindi named entity dataset?", ABSTRACTS) == 1.0


def test_a_framed_quote_is_a_quote_and_says_what_of_the_question_it_answers(embed):
    documents = [[("Sparse subnetworks train to full accuracy.", "abstract"),
                  ("Pruning removes 90% of the weights at no accuracy cost.", "§ Results, p. 7")]]
    question = analyse("How many weights can pruning remove?")
    [sentence] = support_sentences(
        "Pruning: Pruning removes 90% of the weights at no accuracy cost [1, p. 7].", documents,
        embed, 0.7, question,
    )  # fmt: skip
    assert sentence.quote and sentence.support == 1.0 and sentence.location == "§ Results, p. 7"
    assert set(sentence.covers) == {"weights", "pruning", "remove"} and sentence.answers == 1.0


def test_a_paraphrase_is_not_a_quote():
    assert not is_quote("Dense nets hide sparse trainable subnetworks [1].", ABSTRACTS[0])
    assert is_quote("Study: We study pruning of neural networks [1].", "We study pruning of neural networks.")
