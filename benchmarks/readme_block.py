"""Replace the text between a README's ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->`` markers.

Every table in the README is written by a benchmark through this, never typed by hand.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def publish(text: str, out: Path | None = None, block: str | None = None, readme: Path = README) -> None:
    """What every benchmark does with its table: print it, write it to ``out``, and put it
    between the README's ``block`` markers, each when asked."""
    print(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text.rstrip() + "\n")
    if block is not None:
        write_block(block, text, readme)


def write_block(name: str, text: str, path: Path = README) -> None:
    """Put ``text`` between the ``name`` markers of ``path``; refuse when the markers are missing."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    document = path.read_text()
    if begin not in document or end not in document:
        raise SystemExit(f"error: {path} has no {begin} ... {end} markers; add them where the table belongs")
    head, rest = document.split(begin, 1)
    tail = rest.split(end, 1)[1]
    path.write_text(f"{head}{begin}\n{text.rstrip()}\n{end}{tail}")
