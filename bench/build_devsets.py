"""Build a BEIR-format retrieval dev set from the arXiv metadata in ../shared/data/.

Why synthetic: no labelled claim → abstract benchmark is available offline. Three
query types with different biases keep fusion choices from fitting one of them:

- `ict-*`   held-out sentence (inverse cloze): one non-first sentence of an abstract is
            the query and is *removed* from the indexed abstract, so the match must come
            from meaning, not copied words. Closest to "scientific claim → abstract".
- `kw-*`    four rare terms of the paper (highest IDF), shuffled: a keyword searcher;
            favours BM25.
- `title-*` the exact title: a known-item search among near neighbours.

Output (deterministic for a given --seed): OUT/corpus.jsonl, OUT/queries.jsonl,
OUT/qrels/test.tsv. Ingest with `rag ingest OUT/corpus.jsonl --index ...`.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import random
import re
from collections import Counter
from pathlib import Path

from rag.lexical import tokenize

SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(])")
WORD = re.compile(r"[A-Za-z][A-Za-z0-9\-]{3,}")


def read_records(path: Path, limit: int, skip: int = 0) -> list[dict]:
    opener = gzip.open if path.name.endswith(".gz") else open
    rows = []
    with opener(path, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle):
            if number < skip:
                continue
            if len(rows) == limit:
                break
            record = json.loads(line)
            title = " ".join(str(record.get("title", "")).split())
            abstract = " ".join(str(record.get("abstract", "")).split())
            if title and abstract:
                rows.append({"_id": str(record["id"]), "title": title, "text": abstract})
    return rows


def sentences(text: str) -> list[str]:
    return [part.strip() for part in SENTENCE_END.split(text) if part.strip()]


def ict_query(doc: dict, rng: random.Random) -> str | None:
    """Remove one middle/late sentence from doc["text"] and return it (None if unsuitable)."""
    parts = sentences(doc["text"])
    choices = [i for i in range(1, len(parts)) if 60 <= len(parts[i]) <= 300]
    if len(parts) < 4 or not choices:
        return None
    picked = rng.choice(choices)
    doc["text"] = " ".join(part for i, part in enumerate(parts) if i != picked)
    return parts[picked]


def keyword_query(doc: dict, idf: dict[str, float], rng: random.Random) -> str | None:
    """Four of the paper's rarest words (distinct stems, highest corpus IDF), shuffled."""
    words = sorted({word.lower() for word in WORD.findall(f"{doc['title']} {doc['text']}")})
    by_stem: dict[str, str] = {}
    for word, stems in zip(words, tokenize(words)):
        if stems:
            by_stem.setdefault(stems[0], word)
    ranked = sorted(by_stem, key=lambda stem: (-idf.get(stem, 0.0), stem))
    if len(ranked) < 4:
        return None
    picked = [by_stem[stem] for stem in ranked[:4]]
    rng.shuffle(picked)
    return " ".join(picked)


def build(sources: list[tuple[Path, int, int]], per_type: int, seed: int, out: Path) -> None:
    rng = random.Random(seed)
    corpus: list[dict] = []
    for path, limit, skip in sources:
        corpus.extend(read_records(path, limit, skip))
    unique = {doc["_id"]: doc for doc in corpus}
    corpus = list(unique.values())
    document_frequency = Counter(
        token for tokens in tokenize([f"{d['title']} {d['text']}" for d in corpus]) for token in set(tokens)
    )
    idf = {token: math.log(len(corpus) / df) for token, df in document_frequency.items()}
    order = list(range(len(corpus)))
    rng.shuffle(order)
    queries: list[dict] = []
    qrels: list[tuple[str, str]] = []
    cursor = iter(order)
    for kind in ("kw", "title", "ict"):  # ict last: it edits the corpus text
        made = 0
        for position in cursor:
            doc = corpus[position]
            if kind == "ict":
                text = ict_query(doc, rng)
            elif kind == "kw":
                text = keyword_query(doc, idf, rng)
            else:
                text = doc["title"]
            if text is None:
                continue
            qid = f"{kind}-{made}"
            queries.append({"_id": qid, "text": text})
            qrels.append((qid, doc["_id"]))
            made += 1
            if made == per_type:
                break
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    with open(out / "corpus.jsonl", "w", encoding="utf-8") as handle:
        for doc in corpus:
            handle.write(json.dumps(doc, ensure_ascii=False) + "\n")
    with open(out / "queries.jsonl", "w", encoding="utf-8") as handle:
        for query in queries:
            handle.write(json.dumps(query, ensure_ascii=False) + "\n")
    with open(out / "qrels" / "test.tsv", "w", encoding="utf-8") as handle:
        handle.write("query-id\tcorpus-id\tscore\n")
        handle.writelines(f"{qid}\t{doc_id}\t1\n" for qid, doc_id in qrels)
    print(f"wrote {len(corpus)} papers and {len(queries)} queries to {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data"))
    parser.add_argument("--cs-papers", type=int, default=2000, help="papers from the 50k cs file")
    parser.add_argument("--cs-skip", type=int, default=48000, help="start line in the 50k file")
    parser.add_argument("--kaggle-papers", type=int, default=2000)
    parser.add_argument("--per-type", type=int, default=150)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    build(
        [
            (args.data / "arxiv-cs-50k.jsonl.gz", args.cs_papers, args.cs_skip),
            (args.data / "arxiv-kaggle-sample-2k.jsonl", args.kaggle_papers, 0),
        ],
        args.per_type,
        args.seed,
        args.out,
    )


if __name__ == "__main__":
    main()
