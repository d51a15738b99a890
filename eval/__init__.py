"""Offline evaluation: gold suites, retrieval/citation/answer metrics, reports, CI gate.

`eval.harness.run_eval` is the one entry point; `rag eval` and the UI's Eval tab
are thin clients of it.
"""

import rag  # noqa: F401  (offline environment before heavy imports)
