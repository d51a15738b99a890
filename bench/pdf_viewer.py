"""The PDF viewer's work on real papers: can a cited sentence be found on its page, and
what does showing a page cost.

    python -m bench.pdf_viewer /work/fulltext-corpus [--width 1100] [--sentences 3]

Every body passage rag/pdf.py cuts from every PDF is a possible citation. For the first
`--sentences` sentences (6+ words) of each passage, rag.pdfpages.locate searches the
passage's page: found whole (exact), found by a word prefix (approximate), or missed.
Then one page per paper (page 2) is rendered at `--width` pixels as the viewer does
(rag.pdfpages.render_page): milliseconds and image size. Results: docs/workspace.md.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import pypdfium2 as pdfium

from rag.pdf import _split_sentences, parse_pdf_paper
from rag.pdfpages import locate, page_chars, render_page


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path, help="a directory of PDFs (searched recursively)")
    parser.add_argument("--width", type=int, default=1100, help="rendered page width, pixels")
    parser.add_argument("--sentences", type=int, default=3, help="sentences tried per passage")
    args = parser.parse_args()
    files = sorted(args.corpus.rglob("*.pdf"))
    counts = {"exact": 0, "prefix": 0, "missed": 0}
    locate_ms: list[float] = []
    render_ms: list[float] = []
    sizes: list[int] = []
    for path in files:
        paper = parse_pdf_paper(path)
        document = pdfium.PdfDocument(str(path))
        try:
            texts: dict[int, str] = {}
            for passage in paper.passages:
                page = passage.page or 1
                if page not in texts:
                    texts[page] = page_chars(document[page - 1].get_textpage())
                sentences = [s for s in _split_sentences(passage.text) if len(s.split()) >= 6]
                for sentence in sentences[: args.sentences]:
                    start = time.perf_counter()
                    found = locate(texts[page], sentence)
                    locate_ms.append((time.perf_counter() - start) * 1000)
                    counts["missed" if found is None else "exact" if found[2] else "prefix"] += 1
        finally:
            document.close()
        start = time.perf_counter()
        rendered = render_page(path, 2, "", args.width)
        render_ms.append((time.perf_counter() - start) * 1000)
        sizes.append(len(rendered.image))
    total = sum(counts.values()) or 1
    print(f"{len(files)} PDFs, {total} cited-sentence candidates")
    for name, count in counts.items():
        print(f"  {name:7s} {count:6d}  {count / total:.1%}")
    print(f"locate: median {statistics.median(locate_ms):.2f} ms, max {max(locate_ms):.1f} ms")
    print(
        f"render p. 2 at {args.width} px: median {statistics.median(render_ms):.0f} ms, "
        f"max {max(render_ms):.0f} ms; image median {statistics.median(sizes) / 1024:.0f} KB, "
        f"max {max(sizes) / 1024:.0f} KB"
    )


if __name__ == "__main__":
    main()
