"""Optional LLM judge: grades an answer against the reference, several times.

A single LLM judgement is noisy, so each answer is graded `eval_judge_repeats`
times at a non-zero temperature and the mean and spread are reported. The judge
runs only when an OpenAI-compatible endpoint is configured: the bundled 135M
model is far too weak to grade anything.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass

from rag.llm import ChatModel
from rag.prompts import load_prompt
from rag.settings import Settings

JUDGE_PROMPT = "judge"
SCORE = re.compile(r"score\s*[:=]?\s*([1-5])\b", re.IGNORECASE)


@dataclass(frozen=True)
class Verdict:
    """Grades of one answer, each mapped from 1..5 to 0..1."""

    scores: tuple[float, ...]

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.scores) if self.scores else None

    @property
    def spread(self) -> float | None:
        """Population standard deviation of the repeats (0 for a single grade)."""
        return statistics.pstdev(self.scores) if self.scores else None


def judge_enabled(settings: Settings) -> bool:
    return settings.eval_judge_repeats > 0 and bool(
        settings.openai_base_url or settings.openai_api_key
    )


def parse_score(text: str) -> float | None:
    """'Score: 4' -> 0.75; None when the judge did not follow the format."""
    match = SCORE.search(text)
    return (int(match.group(1)) - 1) / 4 if match else None


class Judge:
    def __init__(self, settings: Settings):
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        self.model = ChatModel.connect(
            settings.openai_base_url, key, settings.openai_model, f"openai:{settings.openai_model}",
            timeout_s=settings.llm_timeout_s, max_retries=settings.llm_max_retries,
            max_tokens=16, temperature=settings.eval_judge_temperature,
        )  # fmt: skip
        self.prompt = load_prompt(settings.prompts_dir, JUDGE_PROMPT)
        self.repeats = settings.eval_judge_repeats

    @property
    def label(self) -> str:
        return self.model.label

    def grade(self, question: str, reference: str, answer: str) -> Verdict:
        content = self.prompt.render(question=question, reference=reference, answer=answer)
        messages = [{"role": "user", "content": content}]
        scores = (parse_score(self.model.complete(messages)) for _ in range(self.repeats))
        return Verdict(scores=tuple(score for score in scores if score is not None))
