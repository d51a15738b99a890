"""The Settings tab: per-session answer options (top-k, generator, filters, prompt view).

Controls live in each browser session, so one user's choices never change
another's answers; every request turns them into a Settings copy and filters.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
from pydantic import SecretStr

from rag.filters import RetrievalFilters
from rag.settings import Settings

LLM_MODES = ["auto", "extractive", "local", "openai"]


@dataclass(frozen=True)
class SessionOptions:
    """What one session chose in the Settings tab (blank = keep the server's setting)."""

    top_k: int
    llm: str
    model: str = ""
    endpoint: str = ""
    api_key: str = ""
    year_min: float | None = None
    year_max: float | None = None
    author: str = ""
    category: str = ""
    show_prompt: bool = False

    def settings(self, base: Settings) -> Settings:
        update: dict = {"top_k": max(1, int(self.top_k)), "llm": self.llm}
        if self.model.strip():
            update["openai_model"] = self.model.strip()
        if self.endpoint.strip():
            update["openai_base_url"] = self.endpoint.strip()
        if self.api_key.strip():
            update["openai_api_key"] = SecretStr(self.api_key.strip())
        return base.model_copy(update=update)

    def filters(self) -> RetrievalFilters | None:
        filters = RetrievalFilters(
            year_min=int(self.year_min) if self.year_min else None,
            year_max=int(self.year_max) if self.year_max else None,
            author=self.author.strip() or None,
            category=self.category.strip() or None,
        )
        return None if filters.is_empty() else filters


class OptionsTab:
    """Builds the Settings tab; `components` feed `SessionOptions(*values)` in that order."""

    def __init__(self, settings: Settings):
        self.base = settings

    def build(self) -> None:
        s = self.base
        with gr.Row():
            with gr.Column():
                gr.Markdown("#### Retrieval")
                top_k = gr.Slider(1, 20, value=s.top_k, step=1, label="Papers per answer (top-k)")
                with gr.Row():
                    year_min = gr.Number(label="Year from", precision=0, value=None, info="0 = any")
                    year_max = gr.Number(label="Year to", precision=0, value=None, info="0 = any")
                author = gr.Textbox(label="Author contains", placeholder="e.g. Hinton")
                category = gr.Textbox(label="arXiv category", placeholder="e.g. cs.CL")
            with gr.Column():
                gr.Markdown("#### Answer generator")
                llm = gr.Dropdown(
                    LLM_MODES, value=s.llm, label="Mode",
                    info="extractive: quotes abstracts, no LLM · local: bundled SmolLM2 · "
                    "openai: any OpenAI-compatible endpoint · auto: openai if configured",
                )  # fmt: skip
                model = gr.Textbox(label="Model (openai mode)", placeholder=s.openai_model)
                endpoint = gr.Textbox(
                    label="Endpoint base URL (openai mode)",
                    placeholder=s.openai_base_url or "https://api.openai.com/v1",
                )
                api_key = gr.Textbox(label="API key (kept in this session only)", type="password")
                show_prompt = gr.Checkbox(
                    label="Show the prompt actually sent (power users)", value=False
                )
        self.components = [
            top_k, llm, model, endpoint, api_key, year_min, year_max, author, category, show_prompt
        ]  # fmt: skip
        self.show_prompt = show_prompt


def session_options(*values) -> SessionOptions:
    """Values of OptionsTab.components, in order, as SessionOptions."""
    top_k, llm, model, endpoint, api_key, year_min, year_max, author, category, show = values
    return SessionOptions(
        top_k=top_k, llm=llm, model=model or "", endpoint=endpoint or "", api_key=api_key or "",
        year_min=year_min, year_max=year_max, author=author or "", category=category or "",
        show_prompt=bool(show),
    )  # fmt: skip
