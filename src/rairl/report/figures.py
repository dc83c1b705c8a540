"""The figures of one page: PNGs embedded as data URIs (the page opens offline) and saved in a folder beside it,
`<page stem>_images/<name>.png`, for slides and papers."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from rairl.io import atomic_path


class Figures:
    """PNGs of one page: `add` returns a figure's HTML, `write` saves every PNG added."""

    def __init__(self, output: Path):
        self.output, self.files = output, {}
        self.folder = f"{output.stem}_images"

    def add(self, name: str, png: bytes, caption: str) -> str:
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "figure"
        filename, i = f"{self.folder}/{slug}.png", 1
        while filename in self.files:
            i += 1
            filename = f"{self.folder}/{slug}-{i}.png"
        self.files[filename] = png
        data = base64.b64encode(png).decode("ascii")
        return (
            f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)} <code>{html.escape(filename)}</code></figcaption></figure>"
        )

    def write(self) -> list[Path]:
        paths = []
        (self.output.parent / self.folder).mkdir(parents=True, exist_ok=True)
        for filename, png in self.files.items():
            with atomic_path(self.output.parent / filename) as tmp:
                tmp.write_bytes(png)
            paths.append(self.output.parent / filename)
        return paths
