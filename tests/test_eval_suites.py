"""The hand-written seed gold suite is valid against the bundled corpus; suite parsing."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from eval.metrics import numbers_in
from eval.loaders import (
    QUESTION_TYPES,
    GoldResolver,
    SuiteError,
    is_beir_dir,
    load_beir,
    load_gold_suite,
)
from rag.formats import expand_paths, parse_file
from rag.papers import Paper, normalise_title
from rag.settings import BUNDLED_CORPUS, PROJECT_ROOT

SEED_SUITE = PROJECT_ROOT / "eval" / "suites" / "seed_gold.jsonl"
CI_SUITE = PROJECT_ROOT / "eval" / "suites" / "ci_small.jsonl"
DEV_SUITE = PROJECT_ROOT / "bench" / "answers_dev.jsonl"
NEW_DEV_ID = re.compile(r"dev-[a-z]")  # dev-comp-01, dev-chain-03 (not the older dev-12)
STOPWORDS = set(
    "a an and are as at be by can do does for from how in into is it of on or that the this "
    "to was what when where which who why with".split()
)


@pytest.fixture(scope="module")
def corpus() -> dict[str, Paper]:
    papers: dict[str, Paper] = {}
    for path in expand_paths([BUNDLED_CORPUS])[0]:
        for paper in parse_file(path).papers:
            papers.setdefault(paper.id, paper)
    return papers


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def test_seed_suite_meets_the_issue_minimums():
    questions = load_gold_suite(SEED_SUITE)
    counts = Counter(q.type for q in questions)
    assert len(questions) >= 80
    assert len({ref for q in questions for ref in q.gold}) >= 60
    assert set(counts) == set(QUESTION_TYPES) - {"single", "fulltext"}  # fulltext: own suite
    assert counts["unanswerable"] >= 12
    assert counts["paraphrase"] >= 15
    assert counts["numeric"] >= 10
    assert all(len(q.gold) >= 2 for q in questions if q.type == "multi")
    assert counts["comparison"] >= 12 and counts["definition"] >= 6 and counts["yesno"] >= 6
    assert sum(len(q.gold) >= 2 for q in questions if q.type == "list") >= 8


@pytest.mark.parametrize(("suite", "chains"), [(SEED_SUITE, 10), (DEV_SUITE, 5)], ids=["seed", "dev"])
def test_followup_chains_cover_pronouns_topic_switches_and_unanswerable_turns(suite, chains):
    turns: dict[str, list] = {}
    for question in load_gold_suite(suite):
        if question.chain:
            turns.setdefault(question.chain, []).append(question)
    assert len(turns) >= chains and all(2 <= len(chain) <= 3 for chain in turns.values())
    switches = [
        chain for chain in turns.values()
        if any(later.gold and not set(later.gold) & set(chain[0].gold) for later in chain[1:])
    ]  # fmt: skip
    assert len(switches) >= 2, "chains whose later turn starts a new topic"
    assert any(t.expect_abstain for chain in turns.values() for t in chain[1:])
    assert all(t.answer for chain in turns.values() for t in chain if t.answerable)


@pytest.mark.parametrize("suite", [SEED_SUITE, DEV_SUITE], ids=["seed", "dev"])
def test_new_type_references_are_short_and_comparisons_name_two_sides(suite, corpus):
    text = "\n".join(f"{p.title} {p.abstract}" for p in corpus.values()).lower()
    for record in _records(suite):
        if record["type"] not in ("comparison", "definition", "yesno"):
            continue
        assert 5 <= len(record["answer"].split()) <= 50, record["id"]
        if record["type"] != "comparison":
            continue
        absent = record.get("absent_terms", [])
        # both sides are gold papers, or the one the corpus lacks is named and truly absent
        assert len(record["gold"]) + bool(absent) == 2, record["id"]
        for term in absent:
            assert term.lower() not in text, f"{record['id']}: corpus mentions {term}"
            assert term.lower() in record["question"].lower(), record["id"]
            assert term.lower() in record["answer"].lower(), record["id"]


def test_dev_questions_of_the_new_types_share_no_paper_with_the_test_split():
    test_papers = {normalise_title(ref) for q in load_gold_suite(SEED_SUITE) for ref in q.gold}
    new_dev = [q for q in load_gold_suite(DEV_SUITE) if NEW_DEV_ID.match(q.id)]
    assert len(new_dev) >= 25
    shared = {ref for q in new_dev for ref in q.gold if normalise_title(ref) in test_papers}
    assert not shared, f"dev questions reuse test papers: {shared}"


@pytest.mark.parametrize("suite", [SEED_SUITE, CI_SUITE, DEV_SUITE], ids=["seed", "ci", "dev"])
def test_every_gold_title_is_a_bundled_paper(suite, corpus):
    questions = load_gold_suite(suite)
    resolver = GoldResolver(corpus.values())
    assert resolver.unresolved(questions) == []
    titles = {paper.title for paper in corpus.values()}
    assert [ref for q in questions for ref in q.gold if ref not in titles] == []  # exact titles
    assert all(not q.gold for q in questions if q.type == "unanswerable")
    assert all(q.gold for q in questions if q.type != "unanswerable")


def test_ci_suite_is_a_subset_of_the_seed_suite():
    seed = {q.id: q for q in load_gold_suite(SEED_SUITE)}
    ci = load_gold_suite(CI_SUITE)
    assert all(seed[q.id] == q for q in ci)
    assert {q.type for q in ci} == {q.type for q in seed.values()}


def _content_words(text: str) -> set[str]:
    return {word for word in normalise_title(text).split() if word not in STOPWORDS}


def test_paraphrase_questions_avoid_their_titles_words():
    for question in load_gold_suite(SEED_SUITE):
        if question.type == "paraphrase":
            shared = _content_words(question.question) & _content_words(question.gold[0])
            assert not shared, f"{question.id} repeats title words {shared}"


def test_numeric_answers_state_numbers_from_the_gold_abstract(corpus):
    resolver = GoldResolver(corpus.values())
    for question in load_gold_suite(SEED_SUITE):
        if question.type == "numeric":
            abstract = " ".join(corpus[resolver.resolve(ref)].abstract for ref in question.gold)
            stated = numbers_in(question.answer)
            assert stated and stated <= numbers_in(abstract), question.id


def test_unanswerable_topics_are_absent_from_every_abstract(corpus):
    text = "\n".join(f"{p.title} {p.abstract}" for p in corpus.values()).lower()
    for record in _records(SEED_SUITE):
        if record["type"] == "unanswerable":
            assert record["absent_terms"], record["id"]
            present = [term for term in record["absent_terms"] if term.lower() in text]
            assert not present, f"{record['id']}: corpus mentions {present}"


def test_bad_suite_lines_name_the_file_and_line(tmp_path):
    path = tmp_path / "suite.jsonl"
    path.write_text('{"id": "a", "question": "q?", "gold": ["T"], "type": "factual"}\n{oops\n')
    with pytest.raises(SuiteError, match=re.escape(f"{path}:2")):
        load_gold_suite(path)
    path.write_text('{"id": "a", "question": "q?", "gold": ["T"], "type": "unanswerable"}\n')
    with pytest.raises(SuiteError, match="empty 'gold'"):
        load_gold_suite(path)


def test_gold_titles_alias_and_filters(tmp_path):
    path = tmp_path / "suite.jsonl"
    record = {"id": "a", "question": "q?", "gold_titles": ["Pointer Networks"], "type": "list",
              "filters": {"year_min": 2015}}  # fmt: skip
    path.write_text(json.dumps(record) + "\n")
    (question,) = load_gold_suite(path)
    assert question.gold == ("Pointer Networks",)
    assert question.filters is not None and question.filters.year_min == 2015


def test_beir_directory_keeps_graded_judged_queries(tmp_path):
    (tmp_path / "qrels").mkdir()
    corpus = [{"_id": "d1", "title": "One", "text": "first"}, {"_id": "d2", "title": "Two"}]
    queries = [{"_id": "q1", "text": "one?"}, {"_id": "q2", "text": "?"}]
    (tmp_path / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus))
    (tmp_path / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in queries))
    qrels = "query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td2\t1\nq2\td1\t0\n"
    (tmp_path / "qrels" / "test.tsv").write_text(qrels)
    assert is_beir_dir(tmp_path)
    suite = load_beir(tmp_path)
    assert [p.id for p in suite.corpus] == ["d1", "d2"]
    assert [(q.id, q.grades) for q in suite.questions] == [("q1", {"d1": 2, "d2": 1})]


def _chain_line(**overrides) -> str:
    record = {
        "id": "c1", "type": "followup",
        "turns": [
            {"question": "How many word-images does IndicSTR12 contain?", "type": "numeric",
             "gold": ["IndicSTR12: A Dataset for Indic Scene Text Recognition"],
             "answer": "Over 27000 word-images."},
            {"question": "Which baselines are benchmarked on it?",
             "gold": ["IndicSTR12: A Dataset for Indic Scene Text Recognition"],
             "answer": "PARSeq, CRNN and STARNet."},
            {"question": "What hardware was it collected with?", "unanswerable": True,
             "gold": ["IndicSTR12: A Dataset for Indic Scene Text Recognition"]},
        ],
    }  # fmt: skip
    record.update(overrides)
    return json.dumps(record) + "\n"


def test_a_chain_becomes_its_turns_in_order(tmp_path):
    path = tmp_path / "suite.jsonl"
    single = {"id": "a", "question": "q?", "gold": ["Pointer Networks"], "type": "definition"}
    path.write_text(json.dumps(single) + "\n" + _chain_line())
    questions = load_gold_suite(path)
    assert [q.id for q in questions] == ["a", "c1#1", "c1#2", "c1#3"]
    assert [q.type for q in questions] == ["definition", "numeric", "followup", "followup"]
    assert [(q.chain, q.turn) for q in questions] == [("", 0), ("c1", 1), ("c1", 2), ("c1", 3)]
    assert [q.answerable for q in questions] == [True, True, True, False]
    assert questions[3].gold and questions[3].expect_abstain


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"turns": [{"question": "q?", "gold": ["T"]}]}, "at least two 'turns'"),
        ({"turns": [{"question": "q?", "gold": ["T"]}, {"question": "more?"}]},
         "turn 2: a turn has 'gold' papers unless"),
        ({"turns": [{"question": "", "gold": ["T"]}, {"question": "q?", "gold": ["T"]}]},
         "turn 1: each turn is an object"),
        ({"turns": [{"question": "q?", "gold": ["T"], "type": "followup"},
                    {"question": "q?", "gold": ["T"]}]}, "turn 1: unknown type"),
    ],
)  # fmt: skip
def test_bad_chains_name_the_line_and_turn(tmp_path, overrides, message):
    path = tmp_path / "suite.jsonl"
    path.write_text(_chain_line(**overrides))
    with pytest.raises(SuiteError, match=re.escape(f"{path}:1") + ".*" + re.escape(message)):
        load_gold_suite(path)


def test_turns_outside_a_followup_chain_are_refused(tmp_path):
    path = tmp_path / "suite.jsonl"
    path.write_text(_chain_line(type="list"))
    with pytest.raises(SuiteError, match="type 'followup'"):
        load_gold_suite(path)


def test_a_question_may_name_the_corpus_it_needs(tmp_path):
    path = tmp_path / "suite.jsonl"
    record = {"id": "a", "question": "q?", "gold": ["T"], "type": "factual", "corpus": "pdfs/"}
    path.write_text(json.dumps(record) + "\n")
    assert load_gold_suite(path)[0].corpus == "pdfs/"
    path.write_text(json.dumps(record | {"corpus": ["pdfs/"]}) + "\n")
    with pytest.raises(SuiteError, match="'corpus' must be a path"):
        load_gold_suite(path)


@pytest.mark.parametrize(
    "path", ["eval/suites/fulltext_gold.jsonl", "bench/fulltext_dev.jsonl"]
)
def test_full_text_suites_load_with_their_type_and_pages(path):
    """The PDF body suites are gold suites like any other: `rag eval` can run them."""
    records = [json.loads(line) for line in (PROJECT_ROOT / path).read_text().splitlines()]
    questions = load_gold_suite(PROJECT_ROOT / path)
    assert len(questions) == len(records)
    answerable = [q for q in questions if q.answerable]
    assert answerable and all(q.type == "fulltext" for q in answerable)
    assert all(isinstance(r["page"], int) and r["page"] >= 1 for r in records if r["gold"])
