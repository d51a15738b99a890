"""Answer quality on a gold suite: citations, abstention, support (docs/answers.md).

    python -m bench.answers_bench --suite eval/suites/seed_gold.jsonl --llm extractive
    python -m bench.answers_bench --suite bench/answers_dev.jsonl --calibrate

A suite is JSONL of {id, question, gold: [exact titles], type}; unanswerable
questions have empty gold. The bundled corpus is indexed into --index when that
index is empty. Metrics, per the issue's targets:
  out_of_source   citations shown that point outside the given sources (must be 0)
  removed_markers invented markers the validator removed (LLM modes)
  precision       cited gold papers / cited papers, over answered answerable questions
  recall          cited gold papers / gold papers, over all answerable questions
  abstain_unans   share of unanswerable questions abstained on
  false_abstain   share of answerable questions abstained on
  supported_sentences  answer sentences whose cited abstract supports them (rag/support.py)
  extractive_fallbacks LLM answers replaced by the extractive answer (no supported citation)
--calibrate sweeps the abstention and extractive thresholds (CALIBRATION_GRID) on
one measurement pass: rag/answer/gates.py's judge_evidence and
rag/answer/answerer.py's quote_sources are pure functions of it, so each grid point is re-decided, not re-run;
--calibrate-support measures support scores of claims cited to the wrong paper.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import rag  # noqa: F401  (offline environment first)
from rag.answer import Answerer, AnswerResult
from rag.answer.answerer import decide_evidence, quote_sources
from rag.answer.evidence import split_sentences
from rag.answer.gates import Evidence, judge_retrieval, retrieval_evidence
from rag.answer.question import Question
from rag.index import PaperIndex
from rag.ingest import ingest_paths
from rag.papers import normalise_title
from rag.retrieve import retrieve
from rag.settings import BUNDLED_CORPUS, Settings, load_settings
from rag.answer.support import CachedEmbedder, support_sentences
from eval.metrics import answer_recall, answer_words, multi_paper


def read_suite(path: Path, limit: int | None) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [row for row in rows if "turns" not in row]  # follow-up chains: scored by `rag eval`
    if limit:
        # keep the answerable/unanswerable mix when capping the number of questions
        answerable = [row for row in rows if row["gold"]]
        unanswerable = [row for row in rows if not row["gold"]]
        share = max(1, round(limit * len(unanswerable) / len(rows))) if unanswerable else 0
        rows = answerable[: limit - share] + unanswerable[:share]
    return rows


def score(rows: list[dict], answers: list[dict]) -> dict:
    """Aggregate metrics from rows and per-question outcomes {abstained, cited, invalid, ...}."""
    precisions, recalls, false_abstain, abstain_unans = [], [], [], []
    out_of_source = removed = 0
    sentences = supported = fallbacks = 0
    for row, answer in zip(rows, answers):
        gold = {normalise_title(title) for title in row["gold"]}
        cited = {normalise_title(title) for title in answer["cited"]}
        out_of_source += answer.get("out_of_source", 0)
        removed += answer.get("invalid", 0)
        sentences += answer.get("sentences", 0)
        supported += answer.get("supported", 0)
        fallbacks += answer.get("llm", "").endswith("extractive-fallback")
        if not gold:
            abstain_unans.append(answer["abstained"])
            continue
        false_abstain.append(answer["abstained"])
        recalls.append(len(cited & gold) / len(gold))
        if cited and not answer["abstained"]:
            precisions.append(len(cited & gold) / len(cited))

    def mean(values: list) -> float | None:
        return round(sum(values) / len(values), 3) if values else None

    return {
        "questions": len(rows),
        "answerable": len(recalls),
        "unanswerable": len(abstain_unans),
        "out_of_source": out_of_source,
        "removed_markers": removed,
        "precision": mean(precisions),
        "recall": mean(recalls),
        "abstain_unans": mean(abstain_unans),
        "false_abstain": mean(false_abstain),
        "supported_sentences": round(supported / sentences, 3) if sentences else None,
        "extractive_fallbacks": fallbacks,
    }


def outcome(result: AnswerResult) -> dict:
    source_ids = {record.paper_id for record in result.sources}
    return {
        "abstained": result.abstained,
        "cited": [citation.title for citation in result.citations],
        "out_of_source": sum(c.paper_id not in source_ids for c in result.citations),
        "invalid": result.invalid_citations,
        "sentences": len(result.sentences),
        "supported": sum(sentence.supported for sentence in result.sentences),
        "llm": result.llm,
        "notes": result.notes,
        "answer": result.answer,
        "seconds": round(result.timings_ms.get("total", 0) / 1000, 1),
    }


CALIBRATION_GRID = {  # 9.0 / 1.0 switch a gate off
    "extractive_min_score": [0.42, 0.45, 0.47, 0.5],
    "extractive_margin": [0.05, 0.08, 0.1, 0.12],
    "cite_min_score_share": [0.0, 0.5, 0.6, 0.7, 0.75, 0.8, 0.9],
    "abstain_absent_term_shift": [0.06, 0.08, 0.09, 0.1, 0.12, 9.0],
    "absent_term_answer_score": [0.6, 0.62, 0.65, 1.0],
}


@dataclass
class Measured:
    """What the answer stage reads for one question before deciding anything."""

    analysis: Question
    sources: list
    about: dict
    evidence: Evidence
    units: list


COMPOSITION_GRID = {
    "answer_max_words": [70, 80, 90],
    "extractive_sentences": [4, 5],
    "answer_margin": [0.25, 0.35],
    "answer_redundancy": [0.3, 0.5],
    "answer_aspect_weight": [0.3, 0.5],
    "cite_min_score_share": [0.6, 0.75],
}


def measure(answerer: Answerer, rows: list[dict]) -> list[Measured]:
    """Per single-turn question, the product's own retrieval (comparison sides included)
    and evidence measurement. Deciding is cheap and pure, so it is redone per grid point."""
    settings = answerer.settings
    embed = CachedEmbedder(answerer.index.embedder.get_text_embedding_batch)
    measured = []
    for row in rows:
        standalone = answerer.standalone(row["question"], [])
        analysis, query = standalone.analysis, standalone.query
        sources, about = answerer.retrieval(analysis, query, None)
        evidence = retrieval_evidence(
            query, sources, settings.evidence_max_passages, analysis.entities
        )  # fmt: skip
        units = answerer.measure(query, sources, evidence, embed) if sources else []
        measured.append(Measured(analysis, sources, about, evidence, units))
    return measured


def decide(item: Measured, settings: Settings) -> dict:
    """The extractive answer's outcome under `settings`, decided as rag/answer/answerer.py
    decides a single-turn question."""
    if not item.sources:
        return {"abstained": True, "cited": [], "answer": ""}
    weakness, floor = judge_retrieval(item.evidence, settings), 0.0
    if not weakness:
        weakness, floor = decide_evidence(
            item.analysis, item.evidence, item.sources, settings, item.about
        )
    if weakness:
        return {"abstained": True, "cited": [], "answer": ""}
    text, abstained, selection = quote_sources(
        item.analysis, item.units, item.sources, floor, settings, item.about
    )  # fmt: skip
    numbers = {unit.source_number for unit in selection.units}
    return {
        "abstained": abstained,
        "cited": [item.sources[n - 1].paper.title for n in numbers],
        "answer": "" if abstained else text,
    }


def content_scores(rows: list[dict], answers: list[dict]) -> dict:
    """answer_recall and answer_words (eval/metrics.py) overall, on multi-paper questions
    and per question type, over rows that have a reference answer."""
    by_type: dict[str, list[tuple[float, int]]] = {}
    for row, answer in zip(rows, answers):
        if not row.get("gold") or not row.get("answer"):
            continue
        value = (answer_recall(answer["answer"], row["answer"]) or 0.0, answer_words(answer["answer"]))
        kinds = ["all", row.get("type", "")] + (["multi-paper"] if multi_paper(row) else [])
        for kind in kinds:
            by_type.setdefault(kind, []).append(value)
    return {
        kind: {"answer_recall": round(sum(v[0] for v in values) / len(values), 3),
               "answer_words": round(sum(v[1] for v in values) / len(values), 1), "n": len(values)}
        for kind, values in sorted(by_type.items())
    }  # fmt: skip


def calibrate(answerer: Answerer, rows: list[dict], grid: dict[str, list]) -> list[dict]:
    """Every point of `grid` (other settings as given), scored on `rows`."""
    measured = measure(answerer, rows)
    results = []
    for values in itertools.product(*grid.values()):
        point = dict(zip(grid, values))
        variant = answerer.settings.model_copy(update=point)
        answers = [decide(item, variant) for item in measured]
        results.append({**point, **score(rows, answers), "content": content_scores(rows, answers)})
    return results


def calibrate_support(index: PaperIndex, papers: int = 60, seed: int = 0) -> dict:
    """Support scores of claims against abstracts that do NOT state them.

    For sampled papers, each abstract sentence is scored (as in rag/support.py)
    against (a) the abstract of the most similar other paper retrieved for it
    (a topical near miss, the realistic failure) and (b) a random other abstract.
    A threshold at the near-miss 95th percentile flags >= 95% of such citations.
    """
    rng = random.Random(seed)
    corpus = [paper for paper in index.iter_papers() if paper.abstract.strip()]
    embed = CachedEmbedder(index.embedder.get_text_embedding_batch)
    near, far = [], []
    for paper in rng.sample(corpus, min(papers, len(corpus))):
        neighbour = next(
            (s.paper for s in retrieve(index, paper.abstract, 3) if s.paper.id != paper.id), None
        )
        other = rng.choice([p for p in corpus if p.id != paper.id])
        for claim in split_sentences(paper.abstract)[:4]:
            for pool, wrong in ((near, neighbour), (far, other)):
                if wrong is not None:
                    document = [(text, "abstract") for text in split_sentences(wrong.abstract)]
                    [scored] = support_sentences(f"{claim} [1]", [document], embed, 1.0)
                    pool.append(scored.support or 0.0)

    def percentile(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {
        "claims": len(near),
        "near_miss_p50": percentile(near, 0.5), "near_miss_p90": percentile(near, 0.9),
        "near_miss_p95": percentile(near, 0.95), "random_p95": percentile(far, 0.95),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", type=Path, required=True)
    parser.add_argument("--index", type=Path, default=Path("/tmp/rag-bench-seed-index"))
    parser.add_argument("--llm", default="extractive", choices=["extractive", "local", "openai"])
    parser.add_argument("--limit", type=int, help="cap on questions (keeps the answerable mix)")
    parser.add_argument("--top-k", type=int, dest="top_k")
    parser.add_argument("--max-answer-tokens", type=int, dest="max_answer_tokens")
    parser.add_argument("--calibrate", action="store_true", help="sweep extractive thresholds")
    parser.add_argument(
        "--calibrate-answers", action="store_true", help="sweep evidence-selection settings"
    )
    parser.add_argument(
        "--calibrate-support", action="store_true", help="support scores of unsupported claims"
    )
    parser.add_argument("--out", type=Path, help="write per-question outcomes and metrics here")
    args = parser.parse_args(argv)

    settings = load_settings(
        index=args.index, llm=args.llm, top_k=args.top_k, max_answer_tokens=args.max_answer_tokens
    )
    index = PaperIndex(settings)
    if index.paper_count() == 0:
        ingest_paths(index, [BUNDLED_CORPUS])
    rows = read_suite(args.suite, args.limit)

    if args.calibrate_support:
        print(json.dumps(calibrate_support(index)))
        return 0
    if args.calibrate_answers:
        for line in calibrate(Answerer(index, settings), rows, COMPOSITION_GRID):
            print(json.dumps(line))
        return 0
    if args.calibrate:
        grid = calibrate(Answerer(index, settings), rows, CALIBRATION_GRID)
        for line in grid:
            print(json.dumps(line))
        return 0

    answerer = Answerer(index, settings)
    answers = []
    started = time.perf_counter()
    for number, row in enumerate(rows, start=1):
        answer = {"id": row["id"], **outcome(answerer.ask(row["question"]))}
        answers.append(answer)
        print(f"{number}/{len(rows)} {row['id']} abstained={answer['abstained']} "
              f"cited={len(answer['cited'])} {answer['llm']} {answer['seconds']}s", file=sys.stderr)
    metrics = {
        "suite": str(args.suite), "llm": args.llm, "top_k": settings.top_k,
        "max_answer_tokens": settings.max_answer_tokens,
        "seconds": round(time.perf_counter() - started, 1),
        **score(rows, answers),
    }  # fmt: skip
    print(json.dumps(metrics))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"metrics": metrics, "answers": answers}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
