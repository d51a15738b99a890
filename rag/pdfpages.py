"""One PDF page for the viewer: rendered to an image, the cited passage located on it.

The chat cites `[2, p. 7]`; the viewer (ui/pdfview.py) opens that page with the
evidence sentence highlighted. Both halves use pypdfium2, already the extractor
(rag/pdf.py), so the highlight is found in the same text the passage came from:

- rendering: PDFium draws the page to a bitmap, sent as WebP (no PDF.js, nothing
  from a CDN, no JavaScript that parses untrusted PDFs in the browser);
- locating: the page's characters are read one by one (so every character keeps its
  PDFium index) and folded to lower-case letters and digits only, which makes the
  match blind to line breaks, PDFium's end-of-line hyphenation marks (U+0002),
  real hyphens split at a line end, ligatures and spacing. The quote is folded the
  same way; when the whole of it is not on the page (a running header cut out of the
  passage, a footnote in between), progressively shorter prefixes of its words are
  tried, and the highlight then covers the quote's length from where the prefix
  starts (`exact=False`). The matched characters' boxes come back as PDFium's line
  rectangles, converted to fractions of the rendered page, so the browser can lay
  them over the image at any display size.
"""

from __future__ import annotations

import io
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from rag.pdf import PdfError

IMAGE_MIME = "image/webp"
IMAGE_QUALITY = 80
"""WebP at quality 80: on 32 real papers a 1100 px page is ~200 KB (PNG: ~460 KB; lossless
grey PNG loses colour figures; JPEG blurs small type at twice WebP's size), text still
crisp. bench numbers in docs/workspace.md."""

MIN_PREFIX_WORDS = 4
"""Shortest word prefix of a quote still searched for: three common words ("the model
was") match in many places on a page; four rarely do, and a located passage must be the
cited one."""


@dataclass(frozen=True)
class Box:
    """A highlighted area as fractions of the page (0..1, origin top left)."""

    left: float
    top: float
    right: float
    bottom: float


@dataclass(frozen=True)
class RenderedPage:
    """What the viewer shows: the page image, where it is in the document, the highlight."""

    page: int  # 1-based, clamped to the document
    pages: int
    image: bytes  # IMAGE_MIME
    width: int  # pixels
    height: int
    boxes: tuple[Box, ...] = ()
    exact: bool = False  # the whole quote was found (not only a prefix of it)


def fold(text: str) -> tuple[str, list[int]]:
    """Lower-case letters and digits of `text`, and for each the index of its source char.

    Everything else (spaces, line breaks, hyphens, PDFium's U+0002 hyphenation marks,
    punctuation) is dropped, and ligatures are expanded (NFKC), so the same sentence
    folds to the same string however the page broke, hyphenated or spaced it.
    """
    folded: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        for part in unicodedata.normalize("NFKC", char).casefold():
            if part.isalnum():
                folded.append(part)
                origin.append(index)
    return "".join(folded), origin


def locate(page_text: str, quote: str) -> tuple[int, int, bool] | None:
    """(first char, end char, exact) of `quote` in `page_text`, or None when not found.

    Char indexes are into `page_text`. The whole quote first; then its first words,
    one word fewer each time, down to MIN_PREFIX_WORDS (or the whole quote when it is
    shorter): the span then runs the quote's folded length from the prefix's start.
    """
    haystack, origin = fold(page_text)
    words = quote.split()
    if not haystack or not words:
        return None
    whole, _ = fold(quote)
    shortest = min(MIN_PREFIX_WORDS, len(words))
    for count in range(len(words), shortest - 1, -1):
        needle, _ = fold(" ".join(words[:count]))
        start = haystack.find(needle) if needle else -1
        if start >= 0:
            end = min(start + max(len(whole), len(needle)), len(haystack))
            return origin[start], origin[end - 1] + 1, count == len(words)
    return None


def page_chars(textpage) -> str:
    """The page's text with exactly one character per PDFium char index (get_text_range
    can drop or merge characters, which would shift every highlight)."""
    import pypdfium2.raw as pdfium_c

    raw = textpage.raw
    return "".join(
        chr(pdfium_c.FPDFText_GetUnicode(raw, i) or 0xFFFE) for i in range(textpage.count_chars())
    )


def _boxes(page, textpage, span: tuple[int, int], size: tuple[int, int]) -> tuple[Box, ...]:
    """PDFium's rectangles for chars [start, end), as fractions of the rendered bitmap."""
    import ctypes

    import pypdfium2.raw as pdfium_c

    start, end = span
    width, height = size
    boxes = []
    for i in range(textpage.count_rects(start, end - start)):
        left, bottom, right, top = textpage.get_rect(i)
        corners = []
        for x, y in ((left, top), (right, bottom)):
            device_x, device_y = ctypes.c_int(), ctypes.c_int()
            pdfium_c.FPDF_PageToDevice(
                page.raw, 0, 0, width, height, 0, x, y, device_x, device_y
            )  # page space → bitmap pixels (crop box, /Rotate)
            corners.append((device_x.value, device_y.value))
        (x0, y0), (x1, y1) = corners
        left, right = sorted((x0 / width, x1 / width))
        top, bottom = sorted((y0 / height, y1 / height))
        boxes.append(Box(left, top, right, bottom))
    return tuple(boxes)


def render_page(path: Path, page: int, quote: str = "", width_px: int = 1000) -> RenderedPage:
    """Page `page` (1-based, clamped to the document) as an image `width_px` wide, with the
    boxes of `quote` on it when it is found there (no boxes otherwise)."""
    import pypdfium2 as pdfium

    try:
        document = pdfium.PdfDocument(str(path))
    except (pdfium.PdfiumError, OSError, ValueError) as exc:
        raise PdfError(f"{path}: unreadable PDF ({exc})") from None
    try:
        pages = len(document)
        if not pages:
            raise PdfError(f"{path}: the PDF has no pages")
        number = min(max(page, 1), pages)
        pdf_page = document[number - 1]
        points_wide = pdf_page.get_width() or 1.0
        image = pdf_page.render(scale=width_px / points_wide, may_draw_forms=True).to_pil()
        buffer = io.BytesIO()
        image.save(buffer, format="WEBP", quality=IMAGE_QUALITY)
        boxes: tuple[Box, ...] = ()
        exact = False
        if quote.strip():
            textpage = pdf_page.get_textpage()
            found = locate(page_chars(textpage), quote)
            if found:
                start, end, exact = found
                boxes = _boxes(pdf_page, textpage, (start, end), image.size)
        image_bytes = buffer.getvalue()
        exact = exact and bool(boxes)
        return RenderedPage(number, pages, image_bytes, image.width, image.height, boxes, exact)
    except pdfium.PdfiumError as exc:
        raise PdfError(f"{path}: unreadable PDF ({exc})") from None
    finally:
        document.close()
