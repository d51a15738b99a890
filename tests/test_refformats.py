"""Reference-manager readers on real files written here: BibTeX, RIS, CSL-JSON, a Zotero directory."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from rag.formats import FormatError, detect_format, expand_paths, parse_file
from rag.ingest import ingest_paths
from rag.papers import title_id
from tests.test_formats import ABSTRACT, make_pdf

BODY = "The origami folding schedule converges in twelve steps on every crease pattern we tried."

BIBTEX = r"""% exported by a reference manager
@article{smith2020,
  title = {{BERT}-style Pre-training f\"ur Scientific Abstracts},
  author = {Smith, John and M{\"u}ller, Anna and {OpenScience Consortium}},
  journal = {Journal of Retrieval},
  year = {2020},
  doi = {https://doi.org/10.1234/JR.2020.77},
  abstract = {We pre-train encoders on scientific abstracts and evaluate retrieval.},
}

@misc{doe2021,
  title = {Folding Schedules with Gradient Descent},
  author = {Doe, Jane},
  year = 2021,
  eprint = {2101.00042},
  archivePrefix = {arXiv},
  file = {Full Text PDF:papers/folding.pdf:application/pdf},
}

@book{noabstract,
  title = {A Book Without Any Abstract},
  author = {Nobody, N.},
  year = 1999,
}

@inproceedings{missingpdf,
  title = {Attachment That Is Gone},
  author = {Ghost, G.},
  file = {:does/not/exist.pdf:PDF},
}
"""

RIS = """TY  - JOUR
AU  - Lovelace, Ada
AU  - Babbage, Charles
TI  - Analytical Engines for Citation Graphs
AB  - We build citation graphs with analytical engines and measure their reach.
PY  - 2019///
DO  - 10.5555/ae.2019.1
UR  - https://example.org/ae
ER  - 

TY  - CHAP
T1  - Only a Title Here
Y1  - 2018/05/01
ER  - 

TY  - RPRT
TI  - Preprint With Attachment
AU  - Turing, Alan
UR  - https://arxiv.org/abs/2202.01234v3
L1  - file://{pdf}
ER  - 
"""

CSL = [
    {
        "id": "http://zotero.org/users/1/items/ABCD", "type": "article-journal",
        "title": "Dense Retrieval of Claims", "abstract": "Claims are retrieved densely.",
        "author": [{"family": "Curie", "given": "Marie"}, {"literal": "The Lab"}],
        "issued": {"date-parts": [[2022, 3, 1]]}, "DOI": "10.7777/DRC",
    },
    {
        "id": "b", "type": "article", "title": "Preprint Only", "abstract": "A preprint.",
        "author": [{"family": "Noether", "given": "Emmy"}], "issued": {"raw": "2023"},
        "number": "arXiv:2305.11111",
    },
    {"id": "c", "type": "book", "title": "No Text", "author": []},
    "not an object",
]  # fmt: skip


def write_bib(tmp_path: Path) -> Path:
    (tmp_path / "papers").mkdir()
    make_pdf(tmp_path / "papers" / "folding.pdf", "Folding", "An abstract about folding.", BODY)
    bib = tmp_path / "library.bib"
    bib.write_text(BIBTEX, encoding="utf-8")
    return bib


def test_bibtex_entries_become_papers_with_ids_authors_years_and_pdf_text(tmp_path):
    bib = write_bib(tmp_path)
    assert detect_format(bib) == "bibtex"
    parsed = parse_file(bib)
    by_title = {paper.title: paper for paper in parsed.papers}
    bert = by_title["BERT-style Pre-training für Scientific Abstracts"]
    assert bert.id == "10.1234/jr.2020.77" and bert.doi == "10.1234/jr.2020.77"
    assert bert.authors == "John Smith, Anna Müller, OpenScience Consortium"
    assert bert.year == 2020 and bert.url == "https://doi.org/10.1234/jr.2020.77"
    assert bert.abstract.startswith("We pre-train encoders")
    folding = by_title["Folding Schedules with Gradient Descent"]
    assert folding.id == "2101.00042" and folding.url == "https://arxiv.org/abs/2101.00042"
    assert folding.year == 2021 and folding.authors == "Jane Doe"
    assert "twelve steps" in folding.body  # full text from the attached PDF
    assert folding.abstract.startswith("An abstract about folding")  # the record had none
    assert folding.source == str(tmp_path / "papers" / "folding.pdf")
    bad = dict(parsed.bad_lines)
    assert set(bad) == {20, 26}  # 1-based lines where the unusable entries start
    assert "no abstract and no readable PDF" in bad[20]
    assert "missingpdf" in bad[26]


def test_ris_records_with_authors_flipped_and_pdf_from_l1(tmp_path):
    pdf = make_pdf(tmp_path / "turing.pdf", "Preprint", "Abstract of the preprint.", BODY)
    ris = tmp_path / "export.ris"
    ris.write_text(RIS.replace("{pdf}", str(pdf)), encoding="utf-8")
    assert detect_format(ris) == "ris"
    parsed = parse_file(ris)
    first, preprint = parsed.papers
    assert first.title == "Analytical Engines for Citation Graphs"
    assert first.authors == "Ada Lovelace, Charles Babbage" and first.year == 2019
    assert first.id == "10.5555/ae.2019.1" and first.url == "https://example.org/ae"
    assert preprint.id == "2202.01234" and "twelve steps" in preprint.body
    assert parsed.bad_lines == [(11, "no abstract and no readable PDF attachment")]


def test_csl_json_items(tmp_path):
    path = tmp_path / "My Library.json"
    path.write_text(json.dumps(CSL, indent=1), encoding="utf-8")
    assert detect_format(path) == "csl-json"
    parsed = parse_file(path)
    claims, preprint = parsed.papers
    assert (claims.id, claims.year, claims.authors) == ("10.7777/drc", 2022, "Marie Curie, The Lab")
    assert (preprint.id, preprint.year) == ("2305.11111", 2023)
    assert [line for line, _ in parsed.bad_lines] == [3, 4]


def test_bad_reference_files_are_one_line_errors(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('[{"title": "x",', encoding="utf-8")
    with pytest.raises(FormatError, match="broken.json: invalid JSON"):
        parse_file(broken)


# --- Zotero ---------------------------------------------------------------------------
ZOTERO_SCHEMA = """
CREATE TABLE itemTypes (itemTypeID INTEGER PRIMARY KEY, typeName TEXT, templateItemTypeID INT,
    display INT DEFAULT 1);
CREATE TABLE fields (fieldID INTEGER PRIMARY KEY, fieldName TEXT, fieldFormatID INT);
CREATE TABLE items (itemID INTEGER PRIMARY KEY, itemTypeID INT NOT NULL,
    dateAdded TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    dateModified TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    clientDateModified TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    libraryID INT NOT NULL, key TEXT NOT NULL, version INT NOT NULL DEFAULT 0,
    synced INT NOT NULL DEFAULT 0, UNIQUE (libraryID, key));
CREATE TABLE itemDataValues (valueID INTEGER PRIMARY KEY, value UNIQUE);
CREATE TABLE itemData (itemID INT, fieldID INT, valueID, PRIMARY KEY (itemID, fieldID));
CREATE TABLE creators (creatorID INTEGER PRIMARY KEY, firstName TEXT, lastName TEXT,
    fieldMode INT, UNIQUE (lastName, firstName, fieldMode));
CREATE TABLE creatorTypes (creatorTypeID INTEGER PRIMARY KEY, creatorType TEXT);
CREATE TABLE itemCreators (itemID INT NOT NULL, creatorID INT NOT NULL,
    creatorTypeID INT NOT NULL DEFAULT 1, orderIndex INT NOT NULL DEFAULT 0,
    PRIMARY KEY (itemID, orderIndex), UNIQUE (itemID, creatorID, creatorTypeID));
CREATE TABLE itemAttachments (itemID INTEGER PRIMARY KEY, parentItemID INT, linkMode INT,
    contentType TEXT, charsetID INT, path TEXT, syncState INT DEFAULT 0, storageModTime INT,
    storageHash TEXT, lastProcessedModificationTime INT);
CREATE TABLE deletedItems (itemID INTEGER PRIMARY KEY,
    dateDeleted DEFAULT CURRENT_TIMESTAMP NOT NULL);
INSERT INTO itemTypes (itemTypeID, typeName) VALUES
    (2, 'attachment'), (22, 'journalArticle'), (30, 'preprint'), (28, 'note');
INSERT INTO fields (fieldID, fieldName) VALUES
    (1, 'title'), (2, 'abstractNote'), (6, 'date'), (8, 'url'), (59, 'DOI'), (16, 'extra');
INSERT INTO creatorTypes VALUES (8, 'author'), (10, 'editor');
"""


def build_zotero(directory: Path, pdf_body: str) -> Path:
    """A Zotero 7 data directory: the tables the reader uses, as Zotero defines them."""
    directory.mkdir()
    db = sqlite3.connect(directory / "zotero.sqlite")
    db.executescript(ZOTERO_SCHEMA)
    items = [  # itemID, type, key, title, abstract, date, DOI, extra
        (1, 22, "AAAA1111", "Zotero Journal Paper", ABSTRACT, "2021-06-00 June 2021", "10.1000/zjp", ""),
        (2, 30, "BBBB2222", "Zotero Preprint With PDF", "", "2024-01-05 2024-01-05", "",
         "arXiv: 2401.05555"),
        (3, 22, "CCCC3333", "Deleted Paper", ABSTRACT, "2020", "", ""),
        (4, 2, "DDDD4444", "Full Text PDF", "", "", "", ""),
        (5, 2, "EEEE5555", "Loose PDF", "", "", "", ""),
    ]  # fmt: skip
    value_ids: dict[str, int] = {}

    def value(text: str) -> int:
        if text not in value_ids:
            value_ids[text] = len(value_ids) + 1
            db.execute("INSERT INTO itemDataValues VALUES (?, ?)", (value_ids[text], text))
        return value_ids[text]

    for item, kind, key, title, abstract, date, doi, extra in items:
        db.execute("INSERT INTO items (itemID, itemTypeID, libraryID, key) VALUES (?,?,1,?)",
                   (item, kind, key))  # fmt: skip
        for field, text in ((1, title), (2, abstract), (6, date), (59, doi), (16, extra)):
            if text:
                db.execute("INSERT INTO itemData VALUES (?,?,?)", (item, field, value(text)))
    db.executemany("INSERT INTO creators VALUES (?,?,?,0)", [(1, "Grace", "Hopper"), (2, "Ed", "Itor")])
    db.executemany(
        "INSERT INTO itemCreators VALUES (?,?,?,?)", [(1, 1, 8, 0), (1, 2, 10, 1), (2, 1, 8, 0)]
    )
    db.execute("INSERT INTO itemAttachments (itemID, parentItemID, linkMode, contentType, path) "
               "VALUES (4, 2, 0, 'application/pdf', 'storage:preprint.pdf')")  # fmt: skip
    db.execute("INSERT INTO itemAttachments (itemID, parentItemID, linkMode, contentType, path) "
               "VALUES (5, NULL, 0, 'application/pdf', 'storage:loose.pdf')")  # fmt: skip
    db.execute("INSERT INTO deletedItems (itemID) VALUES (3)")
    db.commit()
    db.close()
    (directory / "storage" / "DDDD4444").mkdir(parents=True)
    make_pdf(directory / "storage" / "DDDD4444" / "preprint.pdf", "Preprint", "PDF abstract.", pdf_body)
    (directory / "storage" / "EEEE5555").mkdir()
    make_pdf(directory / "storage" / "EEEE5555" / "loose.pdf", "A Loose Standalone Paper",
             "Standalone abstract.", "Standalone body text about loose attachments.")  # fmt: skip
    return directory


def test_zotero_directory_read_from_a_copy_with_attachments(tmp_path):
    zotero = build_zotero(tmp_path / "Zotero", BODY)
    before = (zotero / "zotero.sqlite").read_bytes()
    assert expand_paths([zotero])[0] == [zotero]
    assert detect_format(zotero) == "zotero"
    lock = sqlite3.connect(zotero / "zotero.sqlite")  # Zotero running holds its database locked
    lock.execute("BEGIN EXCLUSIVE")
    try:
        parsed = parse_file(zotero)
    finally:
        lock.rollback()
        lock.close()
    assert (zotero / "zotero.sqlite").read_bytes() == before  # never written to
    journal, preprint, loose = parsed.papers
    assert (journal.id, journal.year, journal.authors) == ("10.1000/zjp", 2021, "Grace Hopper")
    assert preprint.id == "2401.05555" and "twelve steps" in preprint.body
    assert preprint.source == str(zotero / "storage" / "DDDD4444" / "preprint.pdf")
    assert "Deleted Paper" not in {paper.title for paper in parsed.papers}
    assert loose.title == "A Loose Standalone Paper" and "Standalone body" in loose.body
    assert parsed.bad_lines == []


def test_ingest_bib_and_ris_then_find_them_once(empty_index, tmp_path):
    bib = write_bib(tmp_path)
    report = ingest_paths(empty_index, [bib])
    assert report.added == 2 and len(report.bad_lines[str(bib)]) == 2
    again = ingest_paths(empty_index, [bib])
    assert again.added == 0 and again.duplicates == 2
    stored = empty_index.get_papers(["10.1234/jr.2020.77", "2101.00042"])
    assert stored["10.1234/jr.2020.77"].authors.startswith("John Smith")
    assert stored["2101.00042"].year == 2021
    assert title_id(stored["2101.00042"].title) != "2101.00042"
