"""A self-contained HTML page: inline style, images embedded as base64 data URIs, no script and
no external URL, so the file opens anywhere, offline, and can be mailed or archived alone."""

import base64
import dataclasses
import html
import pathlib
import struct

# CSS pixels per inch: figures are shown at their printed size (7 in), sharp on dense screens.
CSS_PIXELS_PER_INCH = 96

STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #222;
       max-width: 60rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.25rem; border-bottom: 1px solid #ddd; padding-bottom: 0.2rem;
     margin-top: 2.2rem; }
.subtitle { color: #666; margin-top: 0; }
nav ol { columns: 2; color: #444; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; }
figcaption { color: #555; font-size: 0.9rem; }
table { border-collapse: collapse; font-size: 0.9rem; margin: 0.8rem 0; }
th, td { padding: 0.25rem 0.7rem; border-bottom: 1px solid #e4e4e4; text-align: left; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f6f8fa; padding: 0.8rem; overflow-x: auto; font-size: 0.8rem; }
.note { color: #8a6d3b; background: #fcf8e3; padding: 0.5rem 0.8rem; }
"""


@dataclasses.dataclass(frozen=True)
class Section:
    """One titled part of the page; `anchor` is its id (tests and links find it by that)."""

    anchor: str
    title: str
    body: str


def escape(text) -> str:
    return html.escape(str(text))


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's header chunk."""
    return struct.unpack(">II", data[16:24])


def figure(path: pathlib.Path, caption: str, dpi: int) -> str:
    data = pathlib.Path(path).read_bytes()
    width, _ = png_size(data)
    encoded = base64.b64encode(data).decode("ascii")
    shown = round(width * CSS_PIXELS_PER_INCH / dpi)
    return (
        f'<figure><img src="data:image/png;base64,{encoded}" width="{shown}" '
        f'alt="{escape(caption)}"><figcaption>{escape(caption)} '
        f"({escape(pathlib.Path(path).name)})</figcaption></figure>"
    )


def is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def format_value(value) -> str:
    """Numbers as a reader wants them: 4 significant digits, thousands separated."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1e4 else f"{value:.4g}"
    return "—" if value is None else str(value)


def table(header, rows) -> str:
    head = "".join(f"<th>{escape(cell)}</th>" for cell in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="number">{escape(format_value(cell))}</td>'
            if is_number(cell)
            else f"<td>{escape(format_value(cell))}</td>"
            for cell in row
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def markdown_table(header, rows) -> str:
    def line(cells):
        return "| " + " | ".join(format_value(cell).replace("|", "\\|") for cell in cells) + " |"

    align = [
        "---:" if any(is_number(row[k]) for row in rows) else "---" for k in range(len(header))
    ]
    return "\n".join([line(header), "| " + " | ".join(align) + " |", *map(line, rows)]) + "\n"


def preformatted(text: str) -> str:
    return f"<pre>{escape(text)}</pre>"


def paragraph(text: str) -> str:
    return f"<p>{escape(text)}</p>"


def note(text: str) -> str:
    """A section that could not be drawn says why, instead of vanishing."""
    return f'<p class="note">{escape(text)}</p>'


def page(title: str, subtitle: str, sections: list[Section]) -> str:
    contents = "".join(
        f'<li><a href="#{escape(section.anchor)}">{escape(section.title)}</a></li>'
        for section in sections
    )
    body = "".join(
        f'<section id="{escape(section.anchor)}"><h2>{escape(section.title)}</h2>'
        f"{section.body}</section>\n"
        for section in sections
    )
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{STYLE}</style></head>\n<body><h1>{escape(title)}</h1>"
        f'<p class="subtitle">{escape(subtitle)}</p><nav><ol>{contents}</ol></nav>\n'
        f"{body}</body></html>\n"
    )
