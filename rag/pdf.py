"""PDF → Paper: page-aware text, located passages, and metadata read from the document.

Extraction uses pypdfium2 (PDFium, the engine in Chromium): on 32 real papers it was
over 10x faster than pypdf and 100x faster than pdfplumber, resolves ligatures, keeps
two-column reading order, and marks end-of-line hyphenation with its own character
(U+0002), so "implemen-/tation" is rejoined without touching real hyphens such as
"long-range". The measurements are in docs/pdf.md (bench/pdf_extraction.py).

What comes out:
- per page text, cleaned (soft hyphens rejoined, bare page numbers dropped);
- the abstract (text after an "Abstract" heading, up to the introduction);
- body passages of about `pdf_passage_words` words that never cross a page or a
  section boundary, each with its 1-based page and the numbered section heading
  ("3 Method", "4.2 Results") when one is detected; the reference list is left out
  (it matches every query about its cited titles);
- title (PDF metadata when plausible, else the largest type on page 1), authors
  (metadata, else the name lines under the title), year (arXiv id, then dated lines
  such as "Published as a conference paper at ICLR 2015" or "© 2016"; never the
  file's creation date), DOI and arXiv id found on the first page.
"""

from __future__ import annotations

import re
import statistics
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from rag.papers import Paper, Passage, title_id

ARXIV_STAMP = re.compile(r"arXiv:\s?(\d{4}\.\d{4,5}|[a-z\-]+(?:\.[A-Z]{2})?/\d{7})(v\d+)?", re.I)
DOI = re.compile(r"\b(10\.\d{4,9}/[^\s\"<>]+)", re.I)
HEADING = re.compile(
    r"^(?P<number>(?:\d{1,2}|[A-H])(?:\.\d{1,2}){0,3})\.?\s+(?P<title>[A-Z][^\n]{1,70})$"
)
NAMED_HEADING = re.compile(
    r"^(?:abstract|introduction|related work|background|methods?|methodology|experiments?|"
    r"results|discussion|conclusions?|limitations|acknowledge?ments?|references|bibliography|"
    r"appendix|materials and methods|supplementary material)$",
    re.I,
)
APPENDIX = re.compile(r"^(?:[A-H](?:\.\d+)*\s|appendix)", re.I)
REFERENCES = re.compile(r"^(?:references|bibliography|literature cited)$", re.I)
ABSTRACT_HEAD = re.compile(r"^\s*abstract\b[\s.:—-]*", re.I)
ABSTRACT_END = re.compile(
    r"^(?:(?:1|I)\.?\s+)?(?:introduction|keywords|index terms|key words)\b", re.I
)
DATED_LINE = re.compile(
    r"(?:conference|proceedings|workshop|symposium|journal|published|accepted|received|"
    r"copyright|©|\(c\)|iclr|neurips|nips|icml|cvpr|iccv|eccv|acl|emnlp|naacl|aaai|ijcai|"
    r"interspeech|icassp|ismir|kdd|sigir|www)[^\n]{0,80}?\b((?:19|20)\d{2})\b",
    re.I,
)
PAGE_NUMBER = re.compile(r"^\s*(?:\d{1,4}|page \d{1,4}( of \d{1,4})?)\s*$", re.I)
AFFILIATION = re.compile(
    r"@|\buniversit|\binstitut|\bdepartment|\bschool\b|\blab\b|\blaborator|\bresearch\b|"
    r"\bcollege\b|\binc\b|\bcorp|\bgoogle\b|\bmicrosoft\b|\bdeepmind\b|\bfacebook\b|\bmeta\b|"
    r"\bopenai\b|\bcenter\b|\bcentre\b|\bfaculty\b|\bacademy\b|\bhospital\b|\bltd\b|\bgmbh\b|"
    r"\babstract\b|\bemail\b|\bhttps?:",
    re.I,
)
NAME = re.compile(
    r"^[A-ZÀ-ÖØ-ÞŁ][\w'’.\-]*(?:\s+(?:[A-ZÀ-ÖØ-ÞŁ][\w'’.\-]*|de|van|der|von|da|di|la|le))+$"
)
MARKERS = re.compile(r"[∗*†‡§¶#♮♯⋆★∙•\d]+")
MIN_TITLE_CHARS = 8
EDGE_LINES = 3  # lines at the top and bottom of a page where headers and footers sit
PASSAGE_WORDS = 160
"""Body passage size: near an abstract's length, so BM25 length normalisation treats both
alike, and under MiniLM's 256-word-piece window, so one passage is one chunk."""
TITLE_SIZE_TOLERANCE = 0.25  # points: lines of one title share a glyph height


class PdfError(ValueError):
    """A PDF that cannot be read (message is one line, meant for the user)."""


@dataclass(frozen=True)
class Line:
    """One text line of a page with its glyph height (page 1 only; for title detection)."""

    text: str
    size: float


@dataclass(frozen=True)
class PdfText:
    """What PDFium gives back: per page lines, and the document's info dictionary."""

    pages: list[list[Line]]
    info: dict[str, str]


def _clean(text: str) -> str:
    """PDFium text → plain text: CRLF → LF, stray marks dropped, compatibility forms folded."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe]", "", text)  # glyphs with no Unicode
    return unicodedata.normalize("NFKC", text)


def extract(path: Path) -> PdfText:
    """Read every page's text (with font sizes on page 1) and the info dictionary."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    try:
        document = pdfium.PdfDocument(str(path))
    except (pdfium.PdfiumError, OSError, ValueError) as exc:
        raise PdfError(f"{path}: unreadable PDF ({exc})") from None
    try:
        info = {key: str(value) for key, value in document.get_metadata_dict().items()}
        pages: list[list[Line]] = []
        for number in range(len(document)):
            textpage = document[number].get_textpage()
            count = textpage.count_chars()
            raw = textpage.get_text_range(0, count) if count else ""
            if number == 0 and len(raw) == count:
                box = pdfium_c.FS_RECTF()
                sizes = []
                for i in range(count):  # glyph height as drawn (font size ignores the text matrix)
                    pdfium_c.FPDFText_GetLooseCharBox(textpage.raw, i, box)
                    height = box.top - box.bottom
                    sizes.append(height or pdfium_c.FPDFText_GetFontSize(textpage.raw, i))
            else:
                sizes = [0.0] * len(raw)
            pages.append(_lines(raw, sizes))
    except pdfium.PdfiumError as exc:
        raise PdfError(f"{path}: unreadable PDF ({exc})") from None
    finally:
        document.close()
    return PdfText(pages=pages, info=info)


def _lines(raw: str, sizes: list[float]) -> list[Line]:
    """Split PDFium text into cleaned lines, each with its median glyph height (a drop
    cap or a superscript does not make a line look like a title).

    PDFium ends a hyphenated line with U+0002 (or U+FFFE) instead of "-": the line
    break after it is swallowed so the two halves of the word join.
    """
    lines: list[Line] = []
    current: list[str] = []
    heights: list[float] = []
    joining = False

    def close() -> None:
        text = _clean("".join(current)).strip()
        if text and not PAGE_NUMBER.match(text):
            lines.append(Line(text, statistics.median(heights) if heights else 0.0))

    for char, size in zip(raw, sizes):
        if char in "\x02\ufffe":
            joining = True
            continue
        if char in "\r\n":
            if joining:
                continue
            close()
            current, heights = [], []
            continue
        joining = False
        current.append(char)
        if not char.isspace():
            heights.append(size)
    close()
    return lines


@dataclass(frozen=True)
class Metadata:
    title: str
    authors: str
    year: int
    doi: str
    arxiv_id: str


def _plausible_title(title: str) -> bool:
    """PDF info titles are often junk: empty, 'untitled', a file name, a Word template."""
    title = " ".join(title.split())
    return (
        len(title) >= MIN_TITLE_CHARS
        and " " in title
        and not re.search(r"untitled|microsoft word|\.(?:dvi|tex|docx?|pdf)$|^paper\b", title, re.I)
    )


def _title_from_page(lines: list[Line]) -> tuple[str, int]:
    """The run of largest-type lines near the top of page 1 with at least three words
    (a one-word masthead such as "Research" is skipped); returns (title, index after it)."""
    head = [
        (i, line) for i, line in enumerate(lines[:40])
        if sum(c.isalpha() for c in line.text) >= 3 and not ARXIV_STAMP.search(line.text)
    ]  # fmt: skip
    if not head:
        return "", 0
    for size in sorted({round(line.size, 1) for _, line in head}, reverse=True)[:4]:
        if size <= 0:
            break
        picked: list[str] = []
        end = 0
        for i, line in head:
            if ABSTRACT_HEAD.match(line.text) or _heading(line.text):
                break  # the title never runs into the abstract or the first section
            if abs(line.size - size) < TITLE_SIZE_TOLERANCE:
                if picked and i > end:
                    break
                picked.append(line.text)
                end = i + 1
            elif picked:
                break
        title = " ".join(" ".join(picked).split())
        if len(title.split()) >= 3:
            return title, end
    first_index, first = head[0]
    return first.text, first_index + 1


def _authors_from_lines(lines: list[Line]) -> str:
    """Name lines between the title and the abstract (affiliations and e-mails skipped)."""
    names: list[str] = []
    for line in lines[:30]:
        if ABSTRACT_HEAD.match(line.text) or ABSTRACT_END.match(line.text):
            break
        if AFFILIATION.search(line.text):
            continue
        for part in re.split(r",|\band\b|&|;", MARKERS.sub(" ", line.text)):
            name = " ".join(part.split())
            if NAME.match(name) and len(name.split()) <= 4 and name not in names:
                names.append(name)
    return ", ".join(names[:12])


def _year(text: str, arxiv_id: str) -> int:
    """The arXiv id's yymm, else the first dated venue/copyright line; 0 when unknown."""
    match = re.match(r"(\d{2})(\d{2})\.", arxiv_id)
    if match and 1 <= int(match.group(2)) <= 12:
        return 2000 + int(match.group(1))
    dated = DATED_LINE.search(text)
    return int(dated.group(1)) if dated else 0


def read_metadata(pdf: PdfText) -> tuple[Metadata, int]:
    """Title, authors, year, DOI, arXiv id; and the page-1 line index where the title ends."""
    first = pdf.pages[0] if pdf.pages else []
    first_text = "\n".join(line.text for line in first)
    stamp = ARXIV_STAMP.search(first_text)
    arxiv_id = stamp.group(1) if stamp else ""
    doi_match = DOI.search(pdf.info.get("Subject", "") + " " + first_text)
    doi = doi_match.group(1).rstrip(".,;)]}") if doi_match else ""
    page_title, after = _title_from_page(first)
    info_title = " ".join(pdf.info.get("Title", "").split())
    title = info_title if _plausible_title(info_title) else page_title
    authors = " ".join(pdf.info.get("Author", "").split())
    if not authors or authors.lower() in {"unknown", "author", "anonymous"}:
        authors = _authors_from_lines(first[after:])
    early = "\n".join(line.text for page in pdf.pages[:2] for line in page)
    return Metadata(title, authors, _year(early, arxiv_id), doi, arxiv_id), after


def _heading(text: str) -> str:
    """The section title if this line is a heading ("3 Method", "4.2 Results", "Conclusion")."""
    if len(text) > 80 or text.endswith((".", ",", ";", ":")):
        return ""
    if NAMED_HEADING.match(text):
        return text.title() if text.isupper() else text
    match = HEADING.match(text)
    if match and sum(c.isalpha() for c in match.group("title")) >= 3:
        title = match.group("title").strip()
        if len(title.split()) <= 10 and not re.search(r"\d{3,}|[=<>±×]", title):
            return f"{match.group('number')} {title}"
    return ""


def _split_sentences(text: str) -> list[str]:
    return [part for part in re.split(r"(?<=[.!?])\s+(?=[A-Z(\[])", text) if part]


@dataclass
class _Block:
    page: int
    section: str
    lines: list[str]


def _line_key(text: str) -> str:
    """A line with its numbers blanked: running headers differ only by page number."""
    return re.sub(r"\d+", "#", " ".join(text.lower().split()))


def running_lines(pdf: PdfText, edge: int = EDGE_LINES) -> set[str]:
    """Headers and footers: lines (numbers blanked) among the first or last `edge` lines
    of at least a third of the pages (and of 3 or more). They would otherwise be glued into
    passages ("Published as a conference paper at ICLR 2021 …") and match queries."""
    counts: dict[str, int] = {}
    for lines in pdf.pages:
        for key in {_line_key(line.text) for line in [*lines[:edge], *lines[-edge:]]}:
            counts[key] = counts.get(key, 0) + 1
    floor = max(3, len(pdf.pages) // 3)
    return {key for key, count in counts.items() if count >= floor}


def _blocks(pdf: PdfText, start_line: int) -> list[_Block]:
    """Body text as (page, section) blocks, from page 1 line `start_line` on, references and
    running headers/footers cut."""
    running = running_lines(pdf)
    blocks: list[_Block] = []
    section = ""
    in_references = False
    for number, lines in enumerate(pdf.pages, start=1):
        block = _Block(number, section, [])
        blocks.append(block)
        for line in lines[start_line if number == 1 else 0 :]:
            if ARXIV_STAMP.fullmatch(line.text.split(" [")[0].strip()):
                continue
            if _line_key(line.text) in running:
                continue
            heading = _heading(line.text)
            if heading:
                if REFERENCES.match(re.sub(r"^\d+\s+", "", heading)):
                    in_references = True
                elif in_references and not APPENDIX.match(heading):
                    continue
                else:
                    in_references = False
                section = heading
                block = _Block(number, section, [])
                blocks.append(block)
                continue
            if not in_references:
                block.lines.append(line.text)
    return [block for block in blocks if block.lines]


def _join_lines(lines: list[str]) -> str:
    """Lines → one paragraph. A line ending in a hyphen PDFium did not mark as soft is a
    real compound split at the line end ("152-" + "layer"): joined without a space."""
    text = "".join(line + ("" if re.search(r"\w-$", line) else " ") for line in lines)
    return " ".join(text.split())


def passages_from_blocks(blocks: list[_Block], words: int) -> list[Passage]:
    """Cut each block into passages of about `words` words at sentence ends."""
    passages: list[Passage] = []
    for block in blocks:
        current: list[str] = []
        size = 0
        for sentence in _split_sentences(_join_lines(block.lines)):
            count = len(sentence.split())
            if current and size + count > words:
                passages.append(Passage(" ".join(current), "body", block.page, block.section))
                current, size = [], 0
            current.append(sentence)
            size += count
        if current and size >= 5:
            passages.append(Passage(" ".join(current), "body", block.page, block.section))
    return passages


def _abstract(pdf: PdfText, after_title: int) -> tuple[str, int, int]:
    """(abstract, page index, line index after it) — text under an "Abstract" heading.

    Without a heading, the first paragraph-sized run after the title block stands in.
    """
    for page_index, lines in enumerate(pdf.pages[:2]):
        for i, line in enumerate(lines):
            head = ABSTRACT_HEAD.match(line.text)
            if not head:
                continue
            parts = [line.text[head.end():]]
            j = i + 1
            while j < len(lines) and not (
                ABSTRACT_END.match(lines[j].text) or _heading(lines[j].text)
            ):
                parts.append(lines[j].text)
                j += 1
            text = _join_lines(parts)
            if len(text.split()) >= 2:  # a headed abstract may be short; a stray word is not one
                return text, page_index, j
    lines = pdf.pages[0][after_title:] if pdf.pages else []
    text = _join_lines([line.text for line in lines])
    words = text.split()
    return " ".join(words[:250]), 0, min(len(lines), after_title + 12)


def parse_pdf_paper(path: Path, passage_words: int = PASSAGE_WORDS) -> Paper:
    """Read a PDF into a Paper with body passages located by page and section."""
    pdf = extract(path)
    if not any(pdf.pages):
        raise PdfError(f"{path}: PDF has no extractable text (scanned?)")
    meta, after_title = read_metadata(pdf)
    abstract, page_index, after_abstract = _abstract(pdf, after_title)
    if page_index == 1:  # abstract on page 2: the body starts after it there
        pdf = PdfText([pdf.pages[0][:0], pdf.pages[1][after_abstract:], *pdf.pages[2:]], pdf.info)
        start = 0
    else:
        start = after_abstract
    passages = passages_from_blocks(_blocks(pdf, start), passage_words)
    title = meta.title or path.stem
    if meta.doi:
        paper_id, url = meta.doi, f"https://doi.org/{meta.doi}"
    elif meta.arxiv_id:
        paper_id, url = meta.arxiv_id, f"https://arxiv.org/abs/{meta.arxiv_id}"
    else:
        paper_id, url = title_id(title), ""
    return Paper(
        id=paper_id,
        title=title,
        abstract=abstract,
        authors=meta.authors,
        year=meta.year,
        url=url,
        source=str(path.absolute()),  # a relative path would only resolve from this directory
        doi=meta.doi,
        body=" ".join(passage.text for passage in passages),
        passages=tuple(passages),
    )
