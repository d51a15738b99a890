"""The Gradio chat UI: a thin client of the `rag` library."""
