"""HTML of answers and source cards: chips per turn, escaping, support and evidence marks."""

from __future__ import annotations

import re

from rag.answer import AnswerResult, Citation, SourceRecord
from rag.render import (
    answer_html,
    chat_sources_html,
    highlight_evidence,
    plain_text,
    sentence_supports,
    sources_html,
    support_level,
)

ABSTRACT_1 = "We aggregate quantile models. Weighted ensembles beat single models on 34 data sets."
ABSTRACT_2 = "Averaging fine-tuned weights gives model soups."


def make_result(
    answer: str = "Ensembles help [1]. Soups too [2].", llm: str = "extractive", **extra
) -> AnswerResult:
    sources = [
        SourceRecord(n=1, paper_id="2101.00001", title="Quantile <Aggregation>", score=0.61,
                     url="https://arxiv.org/abs/2101.00001", year=2021, authors="A. B",
                     abstract=ABSTRACT_1, cited=True),
        SourceRecord(n=2, paper_id="t-abc", title="Model soups", score=0.4, url="",
                     abstract=ABSTRACT_2, cited=True),
        SourceRecord(n=3, paper_id="t-def", title="Unrelated & uncited", score=0.1, url="",
                     year=2019, abstract="Other.", cited=False),
    ]  # fmt: skip
    return AnswerResult(
        question="q", answer=answer,
        citations=[Citation(n=s.n, paper_id=s.paper_id, title=s.title) for s in sources if s.cited],
        sources=sources, abstained=False, llm=llm, timings_ms={"total": 12.0}, **extra,
    )  # fmt: skip


def test_markers_become_chips_pointing_at_the_turns_cards():
    html = answer_html(make_result("A [1]. B [1, 2]."), turn=3)
    chips = re.findall(
        r'<a class="cite-chip" href="#src-(\d+)-(\d+)" data-turn="(\d+)" data-cite="(\d+)">', html
    )
    assert chips == [("3", "1", "3", "1"), ("3", "1", "3", "1"), ("3", "2", "3", "2")]
    assert "[1" not in html


def test_every_chip_has_a_card_with_that_id():
    result = make_result()
    chips = set(re.findall(r'href="#(src-\d+-\d+)"', answer_html(result, 2)))
    cards = set(re.findall(r'id="(src-\d+-\d+)"', sources_html(result, 2)))
    assert chips and chips <= cards


def test_answer_and_titles_are_escaped():
    html = answer_html(make_result("x <script>alert(1)</script> [1]."))
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "Quantile &lt;Aggregation&gt;" in sources_html(make_result())


def test_markdown_and_math_characters_stay_literal():
    html = answer_html(make_result("Use p_1 and p_2, *not* $x$ or `code` [1]."))
    for char in "_*$`":
        assert char not in html.split('<a class="cite-chip"')[0]
    assert "p&#95;1" in html and "&#36;x&#36;" in html


def test_uncited_sources_are_listed_separately_not_as_cards():
    html = sources_html(make_result())
    cited_part, uncited_part = html.split("Also retrieved")
    assert 'id="src-0-1"' in cited_part and 'id="src-0-2"' in cited_part
    assert "Unrelated &amp; uncited" in uncited_part and 'id="src-0-3"' not in html
    assert "2019" in uncited_part
    assert "<details><summary>[3] Unrelated &amp; uncited" in uncited_part  # expands to its abstract


def test_card_links_the_paper_when_a_url_is_known():
    html = sources_html(make_result())
    assert (
        '<a href="https://arxiv.org/abs/2101.00001" target="_blank" rel="noopener">2101.00001</a>'
        in html
    )
    assert "t-abc" in html and 'href=""' not in html


def test_chat_sources_show_only_the_latest_turn():
    html = chat_sources_html([make_result(), make_result()])
    sections = re.findall(r'<section class="turn-sources" data-turn="(\d)"( hidden)?>', html)
    assert sections == [("0", " hidden"), ("1", "")]
    assert "appear here" in chat_sources_html([])


def with_sentences(*sentences: dict) -> AnswerResult:
    return make_result(sentences=list(sentences))


SUPPORTED = {"text": "Ensembles help [1].", "citations": [1], "support": 0.9,
             "evidence": "Weighted ensembles beat single models on 34 data sets.",
             "evidence_source": 1, "supported": True, "covers": ["ensembles"],
             "answers": 0.5}  # fmt: skip
UNSUPPORTED = {"text": "Soups too [2].", "citations": [2], "support": 0.7,
               "evidence": "Averaging fine-tuned weights gives model soups.",
               "evidence_source": 2, "supported": False}  # fmt: skip
UNCITED = {"text": "In short, it depends.", "citations": [], "support": None, "evidence": "",
           "evidence_source": None, "supported": False}  # fmt: skip


def test_support_dots_follow_the_answer_stages_verdict():
    answer = answer_html(with_sentences(SUPPORTED, UNSUPPORTED, UNCITED))
    assert "uncited-flag" not in answer  # extractive framing cites nothing on purpose
    assert answer.count('class="answer-sentence"') == 3
    assert answer.count('class="support-dot') == 2  # nothing to check without a citation
    assert 'support-dot support-high" data-support="0.90" title="supported by' in answer
    assert 'support-dot support-low" data-support="0.70" title="not supported by' in answer
    assert answer.count("cite-chip") == 2 and "In short, it depends." in answer


def test_evidence_is_highlighted_in_the_source_it_came_from():
    sources = sources_html(with_sentences(SUPPORTED, UNSUPPORTED))
    card_1, card_2 = sources.split('id="src-0-2"')
    assert (
        '<mark class="evidence">Weighted ensembles beat single models on 34 data sets.</mark>'
        in card_1
    )
    assert '<mark class="evidence">Averaging fine-tuned weights gives model soups.</mark>' in card_2
    assert 'support-badge support-mid" data-answers="0.50"' in card_1
    assert ">answers: ensembles</span>" in card_1
    assert "support-badge" not in card_2  # no question coverage measured for it: no badge


def test_evidence_from_another_source_is_not_highlighted_here():
    moved = {**SUPPORTED, "citations": [1, 2], "evidence_source": 1}
    card_2 = sources_html(with_sentences(moved)).split('id="src-0-2"')[1]
    assert "<mark" not in card_2 and "support-badge" not in card_2


def test_without_sentences_there_are_no_support_marks():
    result = make_result()
    assert sentence_supports(result) == []
    assert "support-dot" not in answer_html(result) and "<mark" not in sources_html(result)


def test_highlight_evidence_escapes_and_ignores_missing_sentences():
    text = highlight_evidence("a < b. c d.", ["a < b.", "not there"])
    assert text == '<mark class="evidence">a &lt; b.</mark> c d.'


def test_support_levels_split_in_thirds():
    assert [support_level(v) for v in (0.0, 0.32, 0.33, 0.65, 0.66, 1.0)] == [
        "low", "low", "mid", "mid", "high", "high",
    ]  # fmt: skip


def test_plain_text_has_answer_and_references():
    text = plain_text(make_result())
    assert text.splitlines() == [
        "Ensembles help [1]. Soups too [2].",
        "",
        "References",
        "[1] Quantile <Aggregation> (2101.00001, 2021) https://arxiv.org/abs/2101.00001",
        "[2] Model soups (t-abc)",
    ]


def test_a_quote_says_quote_from_n_not_a_support_score():
    quoted = {**SUPPORTED, "support": 1.0, "quote": True, "location": "p. 7"}
    answer = answer_html(with_sentences(quoted))
    assert "quote from [1]</span>" in answer and "data-support" not in answer
    assert "1.00" not in answer and "p. 7" in answer


def test_an_uncited_generated_sentence_is_flagged():
    answer = answer_html(make_result(sentences=[SUPPORTED, UNCITED], llm="openai:gpt"))
    assert answer.count('class="uncited-flag"') == 1


def test_body_evidence_is_shown_with_its_location():
    body = {**SUPPORTED, "evidence": "The T-maze needs 50 steps of memory.", "location": "p. 7"}
    card = sources_html(with_sentences(body)).split('id="src-0-2"')[0]
    assert '<span class="passage-location">p. 7</span> <mark class="evidence">The T-maze' in card


def pdf_buttons_of(html: str) -> list[tuple[str, str, str]]:
    return re.findall(
        r'<button type="button" class="open-pdf" data-turn="(\d+)" data-n="(\d+)" data-page="(\d+)"',
        html,
    )


def test_pdf_buttons_open_each_evidence_page_only_for_papers_with_a_pdf():
    body = {**SUPPORTED, "evidence": "The T-maze needs 50 steps.", "location": "§ 3 Method, p. 7"}
    other = {**SUPPORTED, "text": "Also [1].", "evidence": "Ten seeds.", "location": "p. 9"}
    result = make_result(sentences=[body, other, UNSUPPORTED])
    html = sources_html(result, 4, pdfs={"2101.00001", "t-def"})
    assert pdf_buttons_of(html) == [("4", "1", "7"), ("4", "1", "9"), ("4", "3", "1")]
    assert "Open PDF at p. 7</button>" in html.split('id="src-4-2"')[0]
    assert pdf_buttons_of(sources_html(result, 4)) == []  # no PDFs known: no buttons
    uncited = html.split("Also retrieved")[1]
    assert pdf_buttons_of(uncited) == [("4", "3", "1")]  # "Also retrieved" opens at p. 1


def test_abstract_evidence_opens_the_first_page():
    html = chat_sources_html([with_sentences({**SUPPORTED, "location": "abstract"})], pdfs={"2101.00001"})
    assert pdf_buttons_of(html) == [("0", "1", "1")]
