"""The Settings tab: per-session answer options (top-k, generator, filters, prompt view).

Controls live in each browser session, so one user's choices never change
another's answers; every request turns them into a Settings copy and filters.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from rag.endpoints import operator_endpoints, session_choice
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
        """The session's Settings copy. The endpoint is chosen by name among the operator's
        (or is the user's own URL with the user's own key, when the operator allows it):
        the server's URLs and keys are never edited, so its key cannot follow a typed URL.
        Raises EndpointRefused with a message for the user."""
        update: dict = {"top_k": max(1, int(self.top_k)), "llm": self.llm}
        if self.endpoint.strip() or self.model.strip() or self.api_key.strip():
            update |= session_choice(base, self.endpoint, self.model, self.api_key)
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
                endpoints = operator_endpoints(s)
                endpoint = gr.Dropdown(
                    list(endpoints), value=s.llm_endpoint, label="Endpoint (openai mode)",
                    allow_custom_value=s.allow_custom_endpoints,
                    info="configured by the operator"
                    + (" · or type your own https:// URL and key" if s.allow_custom_endpoints
                       else ""),
                )  # fmt: skip
                offered = sorted({m for config in endpoints.values() for m in config.models})
                model = gr.Dropdown(
                    offered, value=None, label="Model (openai mode)",
                    allow_custom_value=True, info="blank = the endpoint's default",
                )  # fmt: skip
                api_key = gr.Textbox(
                    label="Your own API key for your own endpoint (kept in this session only)",
                    type="password", visible=s.allow_custom_endpoints,
                )  # fmt: skip
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
