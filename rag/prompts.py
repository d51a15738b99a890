"""Prompt templates are files in prompts/, loaded by name and identified by hash.

Keeping prompts as files lets researchers diff and version them; the hash goes
into every eval report so a metric change can be traced to a prompt change.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

SENTINEL = "The provided sources do not answer this question."
"""The one sentence every answer path uses to abstain; parsers look for it verbatim."""


@dataclass(frozen=True)
class Prompt:
    name: str
    template: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.template.encode("utf-8")).hexdigest()[:16]

    def render(self, **values: object) -> str:
        return self.template.format(sentinel=SENTINEL, **values)


@lru_cache(maxsize=32)
def load_prompt(prompts_dir: Path, name: str) -> Prompt:
    """Read prompts/<name>.md (or a name with its own suffix)."""
    path = prompts_dir / name if Path(name).suffix else prompts_dir / f"{name}.md"
    if not path.is_file():
        raise ValueError(f"prompt '{name}' not found in {prompts_dir}")
    return Prompt(name=path.stem, template=path.read_text(encoding="utf-8"))
