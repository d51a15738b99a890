"""Reading evaluation suites: gold Q&A JSONL files and BEIR directories.

Gold references may be paper ids or exact titles (titles survive re-ingesting
with another id scheme); they are resolved to the ids of the index under test.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from rag.filters import RetrievalFilters
from rag.papers import Paper, normalise_title, title_id

QUESTION_TYPES = (
    "factual", "paraphrase", "multi", "comparison", "list", "numeric", "definition", "yesno",
    "followup", "unanswerable", "single", "fulltext",
)  # fmt: skip
""""single" is the dev set's older name for a one-paper question without a reference."""


class SuiteError(ValueError):
    """A suite file a user must fix; the message names the file and line."""


@dataclass(frozen=True)
class GoldQuestion:
    """One gold question; `gold` holds paper ids or exact titles as written.

    A turn of a multi-turn chain has `chain` (the chain's id) and `turn` (1-based);
    it is asked after the chain's earlier turns, with their answers as history.
    `expect_abstain` marks a question the sources do not answer (every "unanswerable"
    question, and follow-up turns asking what the cited paper does not say).
    """

    id: str
    question: str
    gold: tuple[str, ...]
    answer: str
    type: str
    filters: RetrievalFilters | None = None
    grades: dict[str, int] = field(default_factory=dict)  # BEIR graded qrels (paper id -> grade)
    chain: str = ""
    turn: int = 0
    expect_abstain: bool = False
    corpus: str = ""  # documents the suite needs beyond the bundled corpus (path, as written)

    @property
    def answerable(self) -> bool:
        return not self.expect_abstain and self.type != "unanswerable"


def _filters(value: object, where: str) -> RetrievalFilters | None:
    if value in (None, {}):
        return None
    if not isinstance(value, dict):
        raise SuiteError(f"{where}: 'filters' must be an object")
    try:
        return RetrievalFilters(**value)
    except TypeError as exc:
        raise SuiteError(f"{where}: bad filters: {exc}") from None


def _gold(record: dict, where: str) -> tuple[str, ...]:
    gold = record.get("gold", record.get("gold_titles", []))
    if not isinstance(gold, list) or not all(isinstance(g, str) for g in gold):
        raise SuiteError(f"{where}: 'gold' must be a list of paper ids or titles")
    return tuple(gold)


def _corpus(record: dict, where: str) -> str:
    corpus = record.get("corpus", "")
    if not isinstance(corpus, str):
        raise SuiteError(f"{where}: 'corpus' must be a path to the documents the question needs")
    return corpus


def _question(record: object, where: str) -> GoldQuestion:
    if not isinstance(record, dict):
        raise SuiteError(f"{where}: expected a JSON object")
    if "turns" in record:
        raise SuiteError(f"{where}: a chain of turns must have type 'followup'")
    gold = _gold(record, where)
    kind = record.get("type", "factual")
    if kind not in QUESTION_TYPES or kind == "followup":
        raise SuiteError(f"{where}: unknown type {kind!r} (expected one of {QUESTION_TYPES})")
    if (kind == "unanswerable") != (not gold):
        raise SuiteError(f"{where}: unanswerable questions, and only they, have empty 'gold'")
    if not str(record.get("question", "")).strip() or not record.get("id"):
        raise SuiteError(f"{where}: 'id' and 'question' are required")
    return GoldQuestion(
        id=str(record["id"]), question=str(record["question"]), gold=gold,
        answer=str(record.get("answer", "")), type=kind,
        filters=_filters(record.get("filters"), where),
        expect_abstain=kind == "unanswerable", corpus=_corpus(record, where),
    )  # fmt: skip


def _chain(record: dict, where: str) -> list[GoldQuestion]:
    """A follow-up chain: {"id", "type": "followup", "turns": [{question, gold, answer,
    unanswerable?, type?}, ...]} -> one question per turn, id "<chain id>#<n>".

    The first turn is typed by its own content ("type", default "factual"); later
    turns are "followup". A turn marked unanswerable may keep the gold paper of
    the conversation (the one it asks about) and is scored by abstention.
    """
    turns = record.get("turns")
    if not record.get("id") or not isinstance(turns, list) or len(turns) < 2:
        raise SuiteError(f"{where}: a chain needs an 'id' and a list of at least two 'turns'")
    questions = []
    for number, turn in enumerate(turns, start=1):
        at = f"{where} turn {number}"
        if not isinstance(turn, dict) or not str(turn.get("question", "")).strip():
            raise SuiteError(f"{at}: each turn is an object with a 'question'")
        gold = _gold(turn, at)
        unanswerable = turn.get("unanswerable", False)
        if not isinstance(unanswerable, bool) or (not gold and not unanswerable):
            raise SuiteError(f"{at}: a turn has 'gold' papers unless it is 'unanswerable': true")
        kind = str(turn.get("type", "unanswerable" if not gold else "factual"))
        if number > 1:
            kind = "followup"
        elif kind not in QUESTION_TYPES or kind == "followup":
            raise SuiteError(f"{at}: unknown type {kind!r} for a chain's first turn")
        questions.append(
            GoldQuestion(
                id=f"{record['id']}#{number}", question=str(turn["question"]), gold=gold,
                answer=str(turn.get("answer", "")), type=kind,
                filters=_filters(turn.get("filters", record.get("filters")), at),
                chain=str(record["id"]), turn=number, expect_abstain=unanswerable,
                corpus=_corpus(record, where),
            )  # fmt: skip
        )
    return questions


def load_gold_suite(path: Path) -> list[GoldQuestion]:
    """Parse a gold Q&A JSONL file; any bad line is a SuiteError naming it.

    Chains come out as their turns, in order and next to each other."""
    questions: list[GoldQuestion] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SuiteError(f"{path}:{number}: invalid JSON ({exc.msg})") from None
        where = f"{path}:{number}"
        if isinstance(record, dict) and record.get("type") == "followup":
            questions.extend(_chain(record, where))
        else:
            questions.append(_question(record, where))
    if not questions:
        raise SuiteError(f"{path}: no questions")
    duplicates = {qid for qid, count in Counter(q.id for q in questions).items() if count > 1}
    if duplicates:
        raise SuiteError(f"{path}: duplicate ids: {', '.join(sorted(duplicates))}")
    return questions


class GoldResolver:
    """Maps gold references (ids or exact titles) to the ids of the papers indexed."""

    def __init__(self, papers: Iterable[Paper]):
        self._ids: set[str] = set()
        self._by_title: dict[str, str] = {}
        for paper in papers:
            self._ids.add(paper.id)
            self._by_title.setdefault(normalise_title(paper.title), paper.id)

    def resolve(self, reference: str) -> str | None:
        """The id of the paper a reference names, or None when it is not indexed."""
        if reference in self._ids:
            return reference
        by_title = self._by_title.get(normalise_title(reference))
        if by_title is not None:
            return by_title
        derived = title_id(reference)
        return derived if derived in self._ids else None

    def unresolved(self, questions: Iterable[GoldQuestion]) -> list[str]:
        """References that name no indexed paper, as 'question id: reference'."""
        return [
            f"{q.id}: {ref}" for q in questions for ref in q.gold if self.resolve(ref) is None
        ]


@dataclass
class BeirSuite:
    """A BEIR directory: corpus to index, queries with graded qrels."""

    corpus: list[Paper]
    questions: list[GoldQuestion]


def is_beir_dir(path: Path) -> bool:
    return all((path / name).is_file() for name in ("corpus.jsonl", "queries.jsonl"))


def _read_jsonl(path: Path) -> Iterable[tuple[int, dict]]:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                raise SuiteError(f"{path}:{number}: invalid JSON ({exc.msg})") from None


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """qrels/test.tsv: query-id, corpus-id, score (header optional); grade 0 = not relevant."""
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        for number, row in enumerate(csv.reader(handle, delimiter="\t"), start=1):
            if not row or (number == 1 and row[0] == "query-id"):
                continue
            try:
                qid, doc, grade = row[0], row[1], int(row[-1])
            except (IndexError, ValueError):
                raise SuiteError(f"{path}:{number}: expected query-id, corpus-id, score") from None
            if grade > 0:
                qrels.setdefault(qid, {})[doc] = grade
    return qrels


def load_beir(directory: Path) -> BeirSuite:
    """Read a BEIR directory; only queries with at least one relevant document are kept."""
    qrels_path = directory / "qrels" / "test.tsv"
    if not qrels_path.is_file():
        raise SuiteError(f"{directory}: missing qrels/test.tsv")
    corpus = []
    for number, record in _read_jsonl(directory / "corpus.jsonl"):
        if "_id" not in record:
            raise SuiteError(f"{directory / 'corpus.jsonl'}:{number}: missing _id")
        corpus.append(
            Paper(
                id=str(record["_id"]), title=str(record.get("title", "")),
                abstract=str(record.get("text", "")), source=str(directory / "corpus.jsonl"),
            )  # fmt: skip
        )
    qrels = _read_qrels(qrels_path)
    questions = [
        GoldQuestion(
            id=str(record["_id"]), question=str(record.get("text", "")),
            gold=tuple(qrels[str(record["_id"])]), answer="", type="factual",
            grades=qrels[str(record["_id"])],
        )  # fmt: skip
        for _, record in _read_jsonl(directory / "queries.jsonl")
        if str(record.get("_id")) in qrels
    ]
    if not corpus or not questions:
        raise SuiteError(f"{directory}: empty corpus or no judged queries")
    return BeirSuite(corpus=corpus, questions=questions)
