"""Write benchmark results into a Markdown document between fixed markers."""

from __future__ import annotations

from pathlib import Path

START = "<!-- benchmark results: start -->"
END = "<!-- benchmark results: end -->"


def write_doc(path: Path, results: str) -> None:
    """Replace the text between :data:`START` and :data:`END` in ``path`` with ``results``.

    The prose around the markers is kept; a missing file or missing markers get a new
    results section appended.
    """
    text = path.read_text() if path.is_file() else "# Performance\n"
    block = f"{START}\n{results}\n{END}"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        tail = rest.split(END, 1)[1]
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n## Results\n\n" + block + "\n"
    path.write_text(text)
