"""The index against a real `chroma run` server, and its safety checks."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from rag.index import IndexMismatchError, PaperIndex
from rag.ingest import ingest_paths
from rag.retrieve import retrieve
from tests.conftest import make_settings

PAPERS = [
    {"id": "s1", "title": "Protein folding with graph networks",
     "abstract": "We predict protein structures using message passing over residue graphs."},
    {"id": "s2", "title": "Speech recognition for low-resource languages",
     "abstract": "We transcribe speech in languages with little labelled audio via transfer learning."},
]  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory):
    """A real Chroma server process on a loopback port, for the index's server mode."""
    chroma = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
    port = free_port()
    data = tmp_path_factory.mktemp("chroma-server")
    process = subprocess.Popen(
        [chroma, "run", "--path", str(data), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
    else:
        process.kill()
        pytest.fail("chroma run did not come up")
    yield port
    process.terminate()
    process.wait(timeout=30)


def test_server_mode_ingest_retrieve_delete(chroma_server, tmp_path):
    settings = make_settings(tmp_path, chroma_host="127.0.0.1", chroma_port=chroma_server)
    papers_file = tmp_path / "p.jsonl"
    papers_file.write_text("\n".join(json.dumps(paper) for paper in PAPERS))
    index = PaperIndex(settings)
    assert index.location == f"chroma://127.0.0.1:{chroma_server}"
    assert ingest_paths(index, [papers_file]).added == 2
    assert ingest_paths(PaperIndex(settings), [papers_file]).added == 0  # a second client
    top = retrieve(index, "how are protein structures predicted", k=1)
    assert [source.paper.id for source in top] == ["s1"]
    assert index.delete_paper("s2") and index.paper_count() == 1
    assert not (tmp_path / "index" / "chroma").exists()  # vectors live on the server


def test_other_embedder_on_existing_index_is_refused(seed_settings, seed_index, tmp_path):
    fake_model = tmp_path / "other-model"
    fake_model.mkdir()
    other = seed_settings.model_copy(update={"embed_model": str(fake_model)})
    with pytest.raises(IndexMismatchError, match="built with embedder"):
        PaperIndex(other)


def test_interrupted_ingest_orphans_are_replaced(empty_index, tmp_path):
    """Chunks written without their paper record (a crash) are replaced, not duplicated."""
    from rag.papers import Paper

    paper = Paper(id="o1", title="Orphan paper", abstract="Text about orphans and recovery.")
    nodes = empty_index._chunk_and_embed([paper])
    empty_index.vector_store.add(nodes)  # chunks only: as if killed before the paper record
    assert empty_index.add_papers([paper]).added == 1
    assert len(empty_index.chunks.get(where={"document_id": "o1"})["ids"]) == len(nodes)
