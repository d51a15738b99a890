"""Check the full-text suite's PDFs against their manifest (the PDFs stay out of git).

    python -m bench.fulltext_corpus [DIRECTORY]     # default: the manifest's "directory"

The manifest (eval/suites/fulltext/manifest.json) names, for every PDF, the public
GitHub repository, commit and path it was taken from, its sha256, title, paper id
and licence. A missing file is reported with the git command that restores it from
a clone of that repository; a file whose sha256 differs is reported as changed.
Exit status 1 when anything is missing or changed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

MANIFEST = Path(__file__).resolve().parent.parent / "eval" / "suites" / "fulltext" / "manifest.json"


def check(directory: Path, manifest: dict) -> list[str]:
    """One line per problem (empty: every PDF is present and unchanged)."""
    problems = []
    for entry in manifest["papers"]:
        path = directory / entry["file"]
        if not path.is_file():
            problems.append(
                f"missing {path}: git -C <clone of {entry['repo']}> show "
                f"{entry['commit']}:{entry['path']!r} > {str(path)!r}"
            )
        elif hashlib.sha256(path.read_bytes()).hexdigest() != entry["sha256"]:
            problems.append(f"changed {path}: sha256 differs from the manifest")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", nargs="?", type=Path)
    args = parser.parse_args()
    manifest = json.loads(MANIFEST.read_text(encoding="utf-8"))
    directory = args.directory or Path(manifest["directory"])
    problems = check(directory, manifest)
    for line in problems:
        print(f"error: {line}", file=sys.stderr)
    count = len(manifest["papers"])
    print(f"{count - len(problems)}/{count} PDFs present and unchanged in {directory}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
