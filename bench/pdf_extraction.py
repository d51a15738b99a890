"""Compare PDF text extractors on real papers: speed and the text defects that hurt retrieval.

    python -m bench.pdf_extraction /work/fulltext-corpus [--libs pypdfium2 pypdf pdfplumber]

Per library: milliseconds per page, and counts over all pages of
- ligature glyphs left in the text (U+FB00–FB06: "ﬁ" makes "fit" unfindable),
- line-end hyphen breaks left as "-\\n" (ambiguous: "implemen-\\ntation" vs "long-\\nrange";
  PDFium marks the soft ones with U+0002 so rag/pdf.py can rejoin exactly those),
- glued words (runs of 25+ lower-case letters: missing spaces between words).
pypdf and pdfplumber are not dependencies of the project: install them to compare.
Results: docs/pdf.md.
"""

from __future__ import annotations

import argparse
import logging
import re
import time
import warnings
from collections.abc import Callable
from pathlib import Path

LIGATURES = re.compile("[\ufb00-\ufb06]")
HYPHEN_BREAK = re.compile(r"[a-z]-\s*\n\s*[a-z]")
GLUED = re.compile(r"[a-z]{25,}")


def pypdfium2_pages(path: Path) -> list[str]:
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(str(path))
    try:
        return [document[i].get_textpage().get_text_bounded() for i in range(len(document))]
    finally:
        document.close()


def pypdf_pages(path: Path) -> list[str]:
    from pypdf import PdfReader

    return [page.extract_text() or "" for page in PdfReader(str(path)).pages]


def pdfplumber_pages(path: Path) -> list[str]:
    import pdfplumber

    with pdfplumber.open(str(path)) as pdf:
        return [page.extract_text() or "" for page in pdf.pages]


EXTRACTORS: dict[str, Callable[[Path], list[str]]] = {
    "pypdfium2": pypdfium2_pages,
    "pypdf": pypdf_pages,
    "pdfplumber": pdfplumber_pages,
}


def measure(name: str, files: list[Path]) -> dict:
    extract = EXTRACTORS[name]
    pages = ligatures = hyphens = glued = errors = 0
    started = time.perf_counter()
    for path in files:
        try:
            texts = extract(path)
        except Exception:  # a library's own failure counts, whatever its type
            errors += 1
            continue
        text = "\n".join(texts)
        pages += len(texts)
        ligatures += len(LIGATURES.findall(text))
        hyphens += len(HYPHEN_BREAK.findall(text))
        glued += len(GLUED.findall(text))
    seconds = time.perf_counter() - started
    return {
        "library": name, "files": len(files), "pages": pages,
        "ms_per_page": round(1000 * seconds / max(pages, 1), 1),
        "ligatures": ligatures, "hyphen_breaks": hyphens, "glued_words": glued, "errors": errors,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--libs", nargs="+", default=list(EXTRACTORS), choices=list(EXTRACTORS))
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # pdfminer/pypdf log every odd font
    warnings.filterwarnings("ignore")
    files = sorted(args.directory.rglob("*.pdf"))
    for name in args.libs:
        print(measure(name, files), flush=True)


if __name__ == "__main__":
    main()
