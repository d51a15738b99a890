"""Run a suite against the library and score it: the one entry point of evaluation.

`run_eval` goes through the same `rag` calls as the CLI and UI (retrieve, then
`Answerer.ask`), so what it measures is what users get. Answers are cached, so
re-running after a metric change costs nothing; the report lands in `out_dir`.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from eval import metrics
from eval.cache import JsonCache, answer_settings, cache_key
from eval.compare import compare_runs
from eval.judge import JUDGE_PROMPT, Judge, judge_enabled
from eval.report import write_report
from eval.loaders import (
    GoldQuestion,
    GoldResolver,
    SuiteError,
    is_beir_dir,
    load_beir,
    load_gold_suite,
)
from rag.answer import AnswerResult, Answerer
from rag.llm import resolve_mode
from rag.embedder import embedder_label
from rag.index import PaperIndex
from rag.local_llm import bundled_model_path
from rag.prompts import load_prompt
from rag.retrieve import retrieve
from rag.settings import PROJECT_ROOT, Settings

RETRIEVAL_K = 10  # deepest cut-off of the retrieval metrics (Recall@10, MRR@10, nDCG@10)


class EvalError(ValueError):
    """A problem with the run the user can fix (index not matching the suite, ...)."""


@dataclass
class EvalReport:
    """What a run produced; the same content as report.json, plus file paths."""

    metrics: dict[str, float]
    by_type: dict[str, dict[str, float]]
    rows: list[dict]
    plots: list[Path]
    report_json: Path
    report_html: Path
    meta: dict = field(default_factory=dict)
    comparison: dict | None = None


@dataclass
class _Target:
    """The index a suite runs against, and its questions with gold resolved to ids."""

    index: PaperIndex
    questions: list[GoldQuestion]
    gold_ids: dict[str, dict[str, int]]  # question id -> {paper id: grade}
    fingerprint: str


def _fingerprint(parts: Sequence[str], settings: Settings) -> str:
    digest = hashlib.sha256()
    for part in [embedder_label(settings), str(settings.chunk_size),
                 str(settings.chunk_overlap), *parts]:  # fmt: skip
        digest.update(part.encode("utf-8") + b"\0")
    return digest.hexdigest()[:16]


def _gold_target(suite: Path, settings: Settings) -> _Target:
    questions = load_gold_suite(suite)
    index = PaperIndex(settings)
    papers = list(index.iter_papers())
    resolver = GoldResolver(papers)
    missing = resolver.unresolved(questions)
    if missing:
        examples = "; ".join(missing[:3])
        corpora = sorted({str(suite.parent / q.corpus) for q in questions if q.corpus})
        needed = " and ".join(corpora) if corpora else "data/seed"
        raise EvalError(
            f"{len(missing)} gold references of {suite} are not in the index at {index.location} "
            f"(e.g. {examples}); ingest the papers the suite was written for "
            f"(rag ingest {needed})"
        )
    gold_ids = {q.id: {resolver.resolve(ref): 1 for ref in q.gold} for q in questions}
    fingerprint = _fingerprint(sorted(f"{p.id}\t{p.title}" for p in papers), settings)
    return _Target(index, questions, gold_ids, fingerprint)  # type: ignore[arg-type]


def _beir_target(directory: Path, settings: Settings) -> _Target:
    """A fresh index of the BEIR corpus, built once per corpus fingerprint and reused."""
    suite = load_beir(directory)
    raw = (directory / "corpus.jsonl").read_bytes()
    fingerprint = _fingerprint([hashlib.sha256(raw).hexdigest()], settings)
    own = settings.model_copy(
        update={"index": settings.eval_cache_dir / "beir" / fingerprint, "chroma_host": None,
                "collection": "beir"}  # fmt: skip
    )
    index = PaperIndex(own)
    if index.paper_count() < len({paper.id for paper in suite.corpus}):
        index.add_papers(suite.corpus)
    gold_ids = {q.id: dict(q.grades) for q in suite.questions}
    return _Target(index, suite.questions, gold_ids, fingerprint)


def _model_name(settings: Settings, mode: str) -> str:
    if mode == "local":
        return f"local:{(settings.local_model_path or bundled_model_path()).name}"
    if mode == "openai":
        return f"openai:{settings.openai_model}@{settings.openai_base_url or 'default'}"
    return mode


def _prompt_hashes(settings: Settings, with_judge: bool) -> dict[str, str]:
    names = [settings.answer_prompt, "system"] + ([JUDGE_PROMPT] if with_judge else [])
    return {name: load_prompt(settings.prompts_dir, name).sha256 for name in names}


def _git_commit() -> str:
    try:
        commit = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def _retrieval_scores(ranked: list[str], scores: list[float], grades: dict[str, int]) -> dict:
    return {
        "recall@1": metrics.recall_at_k(ranked, grades, 1),
        "recall@5": metrics.recall_at_k(ranked, grades, 5),
        "recall@10": metrics.recall_at_k(ranked, grades, 10),
        "mrr@10": metrics.mrr_at_k(ranked, grades, 10),
        "ndcg@10": metrics.ndcg_at_k(ranked, grades, 10, scores),
    }


def _answer_scores(question: GoldQuestion, result: AnswerResult, gold: list[str]) -> dict:
    cited = [citation.paper_id for citation in result.citations]
    scores: dict[str, float | None] = {
        "invalid_citation_rate": float(result.invalid_citations > 0),
    }
    if not question.answerable:
        scores["abstention_accuracy"] = float(result.abstained)
        return scores
    scores.update(
        false_abstention_rate=float(result.abstained),
        citation_precision=metrics.citation_precision(cited, gold),
        citation_recall=metrics.citation_recall(cited, gold),
        token_f1=metrics.token_f1(result.answer, question.answer),
        rouge_l=metrics.rouge_l(result.answer, question.answer),
    )
    if question.type == "numeric":
        scores["numeric_match"] = metrics.numeric_match(result.answer, question.answer)
    content = metrics.answer_recall(result.answer, question.answer)
    if content is not None:  # an abstention delivers none of the reference's content
        scores["answer_recall"] = 0.0 if result.abstained else content
    if not result.abstained:
        scores["answer_words"] = float(metrics.answer_words(result.answer))
    return scores


class _Runner:
    """Answers (or only retrieves for) each question, through the cache."""

    def __init__(self, target: _Target, settings: Settings, retrieval_only: bool):
        self.target = target
        self.settings = settings
        self.retrieval_only = retrieval_only
        self.mode = resolve_mode(settings)
        self.model = _model_name(settings, self.mode)
        self.judge = Judge(settings) if judge_enabled(settings) and not retrieval_only else None
        self.prompts = _prompt_hashes(settings, self.judge is not None)
        self.cache = JsonCache(settings.eval_cache_dir / "answers")
        self.answerer = Answerer(target.index, settings)

    def row(
        self, question: GoldQuestion, history: Sequence[AnswerResult] = ()
    ) -> tuple[dict, AnswerResult | None]:
        """Score one question; `history` is its chain's earlier turns, as full results (what
        the chat UI passes: a follow-up carries the papers the earlier answer cited).

        Retrieval is scored on what the answerer searched (for a follow-up, the query
        it built from the conversation); retrieval-only runs score the question alone.
        """
        grades = self.target.gold_ids[question.id]
        result, cached = (None, False) if self.retrieval_only else self._answer(question, history)
        query = (result.query or question.question) if result is not None else question.question
        started = time.perf_counter()
        sources = retrieve(self.target.index, query, RETRIEVAL_K, question.filters)
        retrieve_ms = round((time.perf_counter() - started) * 1000, 1)
        ranked = [source.paper.id for source in sources]
        row: dict = {
            "id": question.id, "type": question.type, "question": question.question,
            "gold": list(question.gold), "gold_ids": list(grades),
            "retrieved": ranked, "retrieved_titles": [s.paper.title for s in sources],
            "scores": _retrieval_scores(ranked, [s.score for s in sources], grades)
            if question.answerable else {},
            "timings_ms": {"retrieve": retrieve_ms, "total": retrieve_ms},
        }  # fmt: skip
        if question.chain:
            row.update(chain=question.chain, turn=question.turn, query=query,
                       history=[turn.question for turn in history])  # fmt: skip
        if result is None:
            return row, None
        row.update(
            reference=question.answer, answer=result.answer, abstained=result.abstained,
            llm=result.llm, cited=[c.paper_id for c in result.citations],
            cited_titles=[c.title for c in result.citations],
            invalid_citations=result.invalid_citations, timings_ms=result.timings_ms,
            cached=cached,
        )  # fmt: skip
        row["scores"].update(_answer_scores(question, result, list(grades)))
        if self.judge is not None and question.answerable:
            row["scores"].update(self._judge(question, result))
        return row, result

    def _key(self, question: GoldQuestion, extra: str = "") -> str:
        return cache_key(
            question.question + extra, question.filters, self.settings, self.prompts, self.model,
            self.target.fingerprint,
        )  # fmt: skip

    def _answer(
        self, question: GoldQuestion, history: Sequence[AnswerResult]
    ) -> tuple[AnswerResult, bool]:
        """The one call into the answer stage (through the cache): what users get."""
        key = self._key(question, "".join(
            f"\0turn\0{turn.question}\0{turn.answer}\0{[c.paper_id for c in turn.citations]}"
            for turn in history
        ))  # fmt: skip
        hit = self.cache.get(key)
        if hit is not None:
            try:
                return AnswerResult.model_validate(hit), True
            except ValueError:
                pass  # written by an older contract: regenerate
        result = self.answerer.ask(question.question, list(history) or None, question.filters)
        self.cache.put(key, result.model_dump(mode="json"))
        return result, False

    def _judge(self, question: GoldQuestion, result: AnswerResult) -> dict:
        assert self.judge is not None
        judge_id = f"\0judge\0{self.judge.label}\0{self.settings.eval_judge_repeats}"
        key = self._key(question, judge_id)
        hit = self.cache.get(key)
        if hit is None:
            verdict = self.judge.grade(question.question, question.answer, result.answer)
            hit = {"judge": verdict.mean, "judge_spread": verdict.spread, "grades": verdict.scores}
            self.cache.put(key, hit)
        return {"judge_score": hit["judge"], "judge_spread": hit["judge_spread"]}


def summarise(rows: Sequence[dict]) -> dict[str, float]:
    """Mean of every per-question score over the rows where it is defined, plus latency."""
    names = sorted({name for row in rows for name in row["scores"]})
    summary: dict[str, float] = {"questions": float(len(rows))}
    for name in names:
        value = metrics.mean([row["scores"].get(name) for row in rows])
        if value is not None:
            summary[name] = value
    stages = sorted({stage for row in rows for stage in row["timings_ms"]})
    for stage in stages:
        values = [row["timings_ms"][stage] for row in rows if stage in row["timings_ms"]]
        prefix = "latency" if stage == "total" else stage
        summary[f"{prefix}_p50_ms"] = metrics.percentile(values, 50) or 0.0
        summary[f"{prefix}_p95_ms"] = metrics.percentile(values, 95) or 0.0
    return summary


def _by_type(rows: Sequence[dict]) -> dict[str, dict[str, float]]:
    """Metrics per question type, plus the "multi-paper" group (eval/metrics.py)."""
    types = sorted({row["type"] for row in rows})
    groups = {kind: summarise([row for row in rows if row["type"] == kind]) for kind in types}
    several = [row for row in rows if metrics.multi_paper(row)]
    if several:
        groups["multi-paper"] = summarise(several)
    return groups


def run_eval(
    suite: Path,
    settings: Settings,
    out_dir: Path,
    *,
    retrieval_only: bool = False,
    compare: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EvalReport:
    """Evaluate `suite` (gold JSONL or BEIR directory) and write the report to `out_dir`.

    BEIR suites are always retrieval-only. `compare` is a previous run's out_dir:
    the report then holds per-metric deltas with paired-bootstrap CIs.
    `progress(done, total)` is called after each question.
    """
    started = datetime.now(timezone.utc)
    if not suite.exists():
        raise EvalError(f"suite not found: {suite}")
    if compare is not None and not (compare / "report.json").is_file():
        raise EvalError(f"--compare: no report.json in {compare}")
    beir = is_beir_dir(suite)
    if suite.is_dir() and not beir:
        raise SuiteError(f"{suite}: a BEIR directory needs corpus.jsonl, queries.jsonl, qrels/")
    target = _beir_target(suite, settings) if beir else _gold_target(suite, settings)
    runner = _Runner(target, settings, retrieval_only or beir)
    rows: list[dict] = []
    if progress:
        progress(0, len(target.questions))
    chats: dict[str, list[AnswerResult]] = {}  # chain id -> the results of its turns so far
    for done, question in enumerate(target.questions, start=1):
        history = chats.setdefault(question.chain, []) if question.chain else []
        row, result = runner.row(question, tuple(history))
        rows.append(row)
        if question.chain and result is not None:
            history.append(result)
        if progress:
            progress(done, len(target.questions))
    meta = {
        "suite": str(suite),
        "suite_kind": "beir" if beir else "gold",
        "retrieval_only": runner.retrieval_only,
        "started": started.isoformat(timespec="seconds"),
        "duration_s": round((datetime.now(timezone.utc) - started).total_seconds(), 1),
        "git_commit": _git_commit(),
        "llm_mode": None if runner.retrieval_only else runner.mode,
        "models": {
            "answer": None if runner.retrieval_only else runner.model,
            "embedder": embedder_label(settings),
            "judge": runner.judge.label if runner.judge else None,
        },
        "prompt_hashes": runner.prompts,
        "corpus_fingerprint": target.fingerprint,
        "corpus_papers": target.index.paper_count(),
        "index": target.index.location,
        "settings": answer_settings(settings),
        "python": sys.version.split()[0],
    }
    summary, by_type = summarise(rows), _by_type(rows)
    comparison = (
        compare_runs(rows, compare, settings.eval_bootstrap_resamples) if compare else None
    )
    written = write_report(out_dir, meta, summary, by_type, rows, comparison)
    return EvalReport(
        metrics=summary, by_type=by_type, rows=rows, plots=written.plots,
        report_json=written.json_path, report_html=written.html_path, meta=meta,
        comparison=comparison,
    )  # fmt: skip
