"""Past one machine (issue 13 item 5): several ingest workers fill one `chroma run` server.

Each worker is a real `python -m rag.cli ingest` process embedding through the stub
endpoint (the bundled model's vectors) and writing to one real Chroma server. Two
workers share an index directory (one machine: one lock file, one BM25 index); the
third has its own (another machine: nothing shared but the server). The stub holds
requests until all workers' requests are in flight at once, so the test fails if a
worker embeds under a lock another worker waits for. The other tests pin down what
machines sharing one server must get right: BM25 catch-up after another machine's
writes, the embedder-mismatch message, one paper written by two machines at once.
"""

from __future__ import annotations

import json

import pytest

from rag.health import check
from rag.index import PaperIndex
from tests.conftest import make_settings
from tests.embeddings_stub import StubEmbeddings
from tests.test_index import (  # noqa: F401  (chroma_server is a fixture)
    assert_every_paper_searchable, chroma_server, run_cli, write_corpus,
)  # fmt: skip

MACHINES = {"aa": "machine-1", "bb": "machine-1", "cc": "machine-2"}
"""Worker (file prefix) → its index directory."""
PAPERS_PER_WORKER = 24


def server_env(port: int, stub: StubEmbeddings, key: str) -> dict[str, str]:
    """What every worker machine sets: the shared server and endpoint, small batches."""
    return {
        "RAG_CHROMA_HOST": "127.0.0.1", "RAG_CHROMA_PORT": str(port),
        "RAG_EMBED_ENDPOINT": stub.base_url, "RAG_EMBED_API_KEY": key,
        "RAG_EMBED_TIMEOUT_S": "180", "RAG_EMBED_BATCH_SIZE": "8",
        "RAG_INGEST_BATCH_PAPERS": "8",
    }  # fmt: skip


def test_ingest_workers_fill_one_server_in_parallel(chroma_server, tmp_path):
    rows: dict[str, list[dict]] = {}
    with StubEmbeddings(rendezvous=len(MACHINES)) as stub:
        runs = []
        for prefix, machine in MACHINES.items():
            rows[prefix] = write_corpus(tmp_path / f"{prefix}.jsonl", prefix, PAPERS_PER_WORKER)
            env = server_env(chroma_server, stub, f"key-{prefix}")
            runs.append(run_cli("ingest", str(tmp_path / f"{prefix}.jsonl"),
                                "--index", str(tmp_path / machine), **env))  # fmt: skip
        outputs = [run.communicate(timeout=600) for run in runs]
        assert [run.returncode for run in runs] == [0] * len(runs), outputs
        assert stub.max_parallel_keys == len(MACHINES)  # all embedded at the same time
        everything = [row for prefix in MACHINES for row in rows[prefix]]

        # A third machine (this process, its own directory): BM25 is built from the server
        # on its first query; dense, BM25 and filtered search find every paper once.
        settings = make_settings(
            tmp_path / "reader", chroma_host="127.0.0.1", chroma_port=chroma_server,
            embed_endpoint=stub.base_url,
        )  # fmt: skip
        reader = PaperIndex(settings)
        assert_every_paper_searchable(reader, everything)
        assert reader.paper_count() == reader.chunk_count() == len(everything)  # no duplicates
        assert check(reader) == []

        # The shared directory's BM25 index got both its workers' papers as they wrote.
        machine_1 = PaperIndex(settings.model_copy(update={"index": tmp_path / "machine-1"}))
        assert sorted(machine_1.lexical.ids) == sorted(row["id"] for row in rows["aa"] + rows["bb"])
        # machine-2 has only its own papers until it syncs: `rag check` catches it up, clean.
        done = run_cli("check", "--json", "--index", str(tmp_path / "machine-2"),
                       **server_env(chroma_server, stub, "key-check"))  # fmt: skip
        out, err = done.communicate(timeout=300)
        assert done.returncode == 0 and json.loads(out)["healthy"] is True, (out, err)


def test_bm25_of_one_machine_catches_up_after_others_add_and_delete(chroma_server, tmp_path):
    """Machine A's own write must not claim its BM25 index is in step with the server when
    machine B wrote meanwhile, even when the paper counts happen to agree."""
    from rag.papers import Paper

    papers = [Paper(f"m{i}", f"Paper {i} on topic{i}", f"Abstract about marker{i}q.")
              for i in range(5)]  # fmt: skip

    def machine(name: str) -> PaperIndex:
        return PaperIndex(make_settings(
            tmp_path / name, chroma_host="127.0.0.1", chroma_port=chroma_server,
            collection="counts",
        ))  # fmt: skip

    a, b = machine("a"), machine("b")
    a.add_papers(papers[:2])  # A's BM25: m0, m1
    b.add_papers([papers[2]])  # server: m0, m1, m2
    assert b.delete_paper("m0")  # server: m1, m2
    a.add_papers([papers[3]])  # server: m1, m2, m3 — A's BM25 m0, m1, m3: same count
    assert a.lexical.sync_with(a)  # the next query's catch-up still diffs ids
    assert sorted(a.lexical.ids) == ["m1", "m2", "m3"]
    assert [pid for pid, _ in a.lexical.search("marker2q", 1)] == ["m2"]


def test_another_embedder_on_a_shared_collection_is_refused_naming_the_setting(
    chroma_server, tmp_path
):
    """On a server, "another --index" would not help: the message names `collection`."""
    from rag.embedder import embedder_label
    from rag.index import IndexMismatchError

    shared = {"chroma_host": "127.0.0.1", "chroma_port": chroma_server, "collection": "refuse"}
    PaperIndex(make_settings(tmp_path / "a", **shared))  # created with the bundled model
    endpoint = make_settings(tmp_path / "b", embed_endpoint="http://127.0.0.1:9/v1", **shared)
    with pytest.raises(IndexMismatchError) as refused:
        PaperIndex(endpoint)
    assert str(refused.value) == (
        f"index at chroma://127.0.0.1:{chroma_server} was built with embedder "
        f"'{embedder_label(make_settings(tmp_path))}', but 'all-MiniLM-L6-v2 (endpoint)' is configured; "
        "configure that embedder or use another collection (setting collection, now 'refuse')"
    )


def test_one_paper_written_by_two_machines_at_once_keeps_one_set_of_chunks(
    chroma_server, tmp_path
):
    """Both machines found the paper absent and embedded it; the second one's chunks land
    after the first one's whole write (its delete of "orphans" ran before that write)."""
    from rag.papers import Paper

    long_text = " ".join(f"Sentence {i} about tidal energy and turbines." for i in range(150))
    paper = Paper("twice", "Tidal turbines", long_text)
    shared = {"chroma_host": "127.0.0.1", "chroma_port": chroma_server, "collection": "twice"}
    first = PaperIndex(make_settings(tmp_path / "a", **shared))
    second = PaperIndex(make_settings(tmp_path / "b", **shared))
    first_nodes, second_nodes = first._chunk_and_embed([paper]), second._chunk_and_embed([paper])
    assert len(first_nodes) > 1
    first._write([paper], first_nodes)
    second.add_chunks(second_nodes)
    stored = first.chunks.get(where={"document_id": "twice"})["ids"]
    assert sorted(stored) == sorted(f"twice#chunk{n}" for n in range(len(first_nodes)))
