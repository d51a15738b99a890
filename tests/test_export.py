"""Exports of real answers, read back with the same libraries a reference manager would use."""

from __future__ import annotations

import json

import bibtexparser
import pytest
import rispy
from bibtexparser.middlewares import SeparateCoAuthors, SplitNameParts

from rag.answer import Answerer
from rag.cli import main
from rag.export import (
    author_names, citation_key, conversation_markdown, export_text, reference_list,
)  # fmt: skip
from rag.index import PaperIndex
from rag.ingest import ingest_paths
from rag.papers import Paper
from tests.conftest import make_settings

LIBRARY = r"""
@article{glacier,
  title = {Measuring Glacier Retreat with Satellite Radar Interferometry},
  author = {Nansen, Fridtjof and M{\"u}ller, Anna},
  year = {2021}, doi = {10.5194/TC-15-2021},
  abstract = {We measure glacier retreat with satellite radar interferometry. Radar
    interferometry tracks glacier surface velocity to centimetre precision across whole
    ice fields, and retreat rates doubled between 2000 and 2020.},
}
@misc{coral,
  title = {Coral Reef Bleaching Forecasts from Sea Surface Temperature},
  author = {Darwin, Charles},
  year = {2023}, eprint = {2303.04567}, archivePrefix = {arXiv},
  abstract = {We forecast coral reef bleaching from sea surface temperature anomalies. The
    forecast predicts bleaching events eight weeks ahead from heat stress.},
}
@misc{bees,
  title = {Honey Bee Navigation by Polarised Light},
  author = {von Frisch, Karl},
  year = {1967},
  abstract = {Honey bees navigate by the pattern of polarised light in the sky. Foragers
    communicate the direction of food with the waggle dance.},
}
"""
QUESTION = "How is glacier retreat measured with satellite radar interferometry?"
FOLLOW_UP = "How far ahead can coral reef bleaching be forecast from sea surface temperature?"


@pytest.fixture(scope="module")
def library_index(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    (root / "library.bib").write_text(LIBRARY, encoding="utf-8")
    settings = make_settings(root, llm="extractive")
    index = PaperIndex(settings)
    report = ingest_paths(index, [root / "library.bib"])
    assert report.added == 3, report.problems()
    return index


@pytest.fixture(scope="module")
def answers(library_index):
    answerer = Answerer(library_index, library_index.settings)
    first = answerer.ask(QUESTION)
    second = answerer.ask(FOLLOW_UP, [(first.question, first.answer)])
    assert [s.paper_id for s in first.sources if s.cited] == ["10.5194/tc-15-2021"]
    assert "2303.04567" in [s.paper_id for s in second.sources if s.cited]
    return [first, second]


def test_bibtex_export_parses_back_with_ids_authors_and_identifiers(answers, library_index):
    text = export_text(answers, "bibtex", library_index)
    library = bibtexparser.parse_string(text, append_middleware=[SeparateCoAuthors(), SplitNameParts()])
    assert not library.failed_blocks
    entries = {entry["title"]: entry for entry in library.entries}
    glacier = entries["Measuring Glacier Retreat with Satellite Radar Interferometry"]
    assert glacier.entry_type == "article" and glacier["doi"] == "10.5194/tc-15-2021"
    assert [n.last for n in glacier["author"]] == [["Nansen"], ["Müller"]]
    assert glacier.key == "nansen2021measuring"
    coral = entries["Coral Reef Bleaching Forecasts from Sea Surface Temperature"]
    assert coral["eprint"] == "2303.04567" and coral["archiveprefix"] == "arXiv"
    assert "Honey Bee Navigation by Polarised Light" not in entries  # never cited


def test_ris_and_csl_json_exports_parse_back(answers, library_index):
    text = export_text(answers, "ris", library_index)
    assert text.startswith("TY  - JOUR\n")  # plain RIS: no record-number lines
    records = rispy.loads(text)
    glacier = next(r for r in records if r["title"].startswith("Measuring Glacier"))
    assert glacier["authors"] == ["Nansen, Fridtjof", "Müller, Anna"]
    assert glacier["year"] == "2021" and glacier["doi"] == "10.5194/tc-15-2021"
    items = json.loads(export_text(answers, "csl-json", library_index))
    coral = next(item for item in items if item["id"] == "2303.04567")
    assert coral["author"] == [{"given": "Charles", "family": "Darwin"}]
    assert coral["issued"] == {"date-parts": [[2023]]} and coral["number"] == "arXiv:2303.04567"


def test_markdown_conversation_has_each_answer_and_its_styled_references(answers, library_index):
    text = conversation_markdown(answers, library_index, style="apa", title="Glaciers and reefs")
    assert text.startswith("# Glaciers and reefs\n")
    assert f"## {QUESTION}" in text and f"## {FOLLOW_UP}" in text
    first = text.split(f"## {FOLLOW_UP}")[0]
    assert answers[0].answer.strip() in first
    n = next(s.n for s in answers[0].sources if s.cited)
    assert (
        f"[{n}] Nansen, F., & Müller, A. (2021). Measuring Glacier Retreat with Satellite Radar "
        "Interferometry. https://doi.org/10.5194/tc-15-2021"
    ) in first


def test_reference_styles_differ_and_numeric_styles_keep_only_our_numbers():
    papers = [Paper(id="10.1/a", title="A Title", abstract="x", authors="Ada Lovelace",
                    year=1843, doi="10.1000/a", url="https://doi.org/10.1000/a")]  # fmt: skip
    apa, ieee = reference_list(papers, "apa"), reference_list(papers, "ieee")
    assert apa[0].startswith("Lovelace, A. (1843)")
    assert ieee[0].startswith("A. Lovelace, “A Title”")
    with pytest.raises(ValueError, match="unknown citation style"):
        reference_list(papers, "no-such-style")


def test_names_and_keys():
    assert author_names("A. Smith, B. Jones and C. Li") == ["A. Smith", "B. Jones", "C. Li"]
    taken: set[str] = set()
    paper = Paper(id="x", title="The Art of Folding", abstract="", authors="Jo Ng", year=2020)
    assert citation_key(paper, taken) == "ng2020art"
    assert citation_key(paper, taken) == "ng2020arta"


def test_cli_ask_format_prints_the_export(capsys, library_index):
    index = str(library_index.settings.index)
    code = main(["ask", QUESTION, "--llm", "extractive", "--format", "bibtex", "--index", index])
    out = capsys.readouterr().out
    assert code == 0
    assert bibtexparser.parse_string(out).entries[0]["doi"] == "10.5194/tc-15-2021"
    code = main(["ask", QUESTION, "--llm", "extractive", "--format", "markdown", "--style", "ieee",
                 "--index", index])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and out.startswith(f"## {QUESTION}") and "“Measuring Glacier Retreat" in out
    code = main(["ask", QUESTION, "--llm", "extractive", "--format", "markdown", "--style", "nope",
                 "--index", index])  # fmt: skip
    assert code == 1 and capsys.readouterr().err.startswith("error: unknown citation style")


def test_exported_files_import_back_as_the_same_papers(answers, library_index, tmp_path):
    from rag.formats import parse_file

    expected = {s.paper_id for r in answers for s in r.sources if s.cited}
    for fmt, suffix in (("bibtex", ".bib"), ("ris", ".ris"), ("csl-json", ".json")):
        path = tmp_path / f"export{suffix}"
        path.write_text(export_text(answers, fmt, library_index), encoding="utf-8")
        parsed = parse_file(path)
        assert {paper.id for paper in parsed.papers} == expected, fmt
        assert all(paper.authors and paper.year for paper in parsed.papers), fmt
