"""Seeing tokens: coloured token spans, merge tables and BPE traces as HTML.

Every function here is pure: it takes tokens (or a tokenizer and a text) and
returns an HTML string, which a notebook shows with
``IPython.display.HTML(...)`` or puts into an ``ipywidgets.HTML`` box. Tests
can read the same strings.

* ``show_bytes(b)`` writes one token's bytes as readable text: spaces as "␣",
  newlines as "↵", and bytes that are not complete UTF-8 characters as
  ``\\xNN`` escapes (a token may hold part of an emoji or a CJK character).
* ``token_html`` / ``render_tokens`` colour each token of a text, the way
  tokenizer playgrounds do; hovering a token shows its id and bytes.
* ``merges_table`` lists BPE merges in the order they were learned;
  ``trace_table`` shows one chunk going from bytes to tokens, one merge a row.
* ``official_encoding`` loads OpenAI's ``gpt2`` / ``cl100k_base`` encodings
  from tiktoken's local cache only, so a chapter never waits on the network.
"""

from __future__ import annotations

import hashlib
import html
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

# Pastel backgrounds that keep black text readable; neighbours always differ.
PALETTE = ("#fde2a7", "#b9e4c9", "#c6d8f7", "#f7c6d9", "#d9c6f7", "#c9f0ef", "#f3d1b5",
           "#e1ecb0")
_VISIBLE = {" ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍"}


def show_bytes(b: bytes, visible_space: bool = True) -> str:
    """One token's bytes as readable text.

    Valid UTF-8 is shown as text (with "␣" for a space, "↵" for a newline and
    "⇥" for a tab when ``visible_space``); anything else, such as the first
    two of the three bytes of "東", as ``\\xNN`` escapes. The result is plain
    text: escape it before putting it into HTML.
    """
    try:
        text = b.decode("utf-8")
    except UnicodeDecodeError:
        return "".join(f"\\x{x:02x}" for x in b)
    if visible_space:
        text = "".join(_VISIBLE.get(ch, ch) for ch in text)
    return text


def _is_text(b: bytes) -> bool:
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _span_text(b: bytes) -> str:
    """What a coloured span shows: the text itself (spaces stay spaces, since the
    background already shows them), a newline as "↵" plus a real line break."""
    if not _is_text(b):
        return html.escape(show_bytes(b))
    text = b.decode("utf-8")
    return html.escape(text.replace("\t", "⇥\t").replace("\r", "␍").replace("\n", "↵\n"))


def token_html(pieces: Sequence[bytes], ids: Sequence[int] | None = None,
               show_ids: bool = False) -> str:
    """Coloured spans, one per token, inside a monospace block.

    ``pieces`` are the exact bytes of each token (``Tokenizer.piece_bytes``);
    ``ids`` (optional) go into each span's tooltip, and under each token when
    ``show_ids``. Partial UTF-8 characters are shown as ``\\xNN`` in italics.
    """
    if ids is not None and len(ids) != len(pieces):
        raise ValueError(f"got {len(pieces)} pieces but {len(ids)} ids")
    spans = []
    for i, b in enumerate(pieces):
        colour = PALETTE[i % len(PALETTE)]
        tip = f"token {i}" + (f", id {ids[i]}" if ids is not None else "") + f": {b!r}"
        style = f"background-color:{colour};border-radius:3px;padding:1px 0;margin:0 1px"
        if not _is_text(b):
            style += ";font-style:italic;color:#555"
        body = _span_text(b)
        if show_ids and ids is not None:
            body += f"<sub style='color:#777;font-size:70%'>{ids[i]}</sub>"
        spans.append(f'<span class="tok" style="{style}" title="{html.escape(tip)}">{body}</span>')
    return ("<div class='tokens' style='font-family:monospace;white-space:pre-wrap;"
            f"line-height:1.9'>{''.join(spans)}</div>")


def render_tokens(tokenizer, text: str, show_ids: bool = False, max_tokens: int = 3000) -> str:
    """``text`` tokenized by ``tokenizer`` (special tokens read as plain text), as
    coloured spans; texts longer than ``max_tokens`` tokens are cut with a note."""
    ids = tokenizer.encode(text, allow_special=False)
    shown = ids[:max_tokens]
    out = token_html([tokenizer.token_bytes(i) for i in shown], shown, show_ids)
    if len(ids) > max_tokens:
        out += f"<div><i>... {len(ids) - max_tokens:,} more tokens not shown</i></div>"
    return out


def token_summary(tokenizer, text: str) -> str:
    """One line: tokens, bytes, tokens per byte and words (whitespace-separated)."""
    n_tokens = len(tokenizer.encode(text, allow_special=False))
    n_bytes, n_words = len(text.encode("utf-8")), len(text.split())
    per_byte = n_tokens / n_bytes if n_bytes else 0.0
    return (f"{n_tokens:,} tokens for {n_bytes:,} bytes ({per_byte:.3f} tokens per byte) "
            f"and {n_words:,} words ({n_tokens / max(n_words, 1):.2f} tokens per word)")


def html_table(header: Sequence[str], rows: Sequence[Sequence], raw_columns: Sequence[int] = (),
               caption: str = "") -> str:
    """A small HTML table. Cells are escaped, except columns listed in
    ``raw_columns`` (already HTML, e.g. coloured tokens)."""
    for r in rows:
        if len(r) != len(header):
            raise ValueError(f"row {list(r)!r} has {len(r)} cells, the header has {len(header)}")
    cell = "padding:2px 8px;text-align:left;border-bottom:1px solid #ddd"

    def fmt(j, v):
        return str(v) if j in raw_columns else html.escape(str(v))

    head = "".join(f"<th style='{cell}'>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td style='{cell}'>{fmt(j, v)}</td>"
                                    for j, v in enumerate(r)) + "</tr>" for r in rows)
    cap = f"<caption style='text-align:left'>{html.escape(caption)}</caption>" if caption else ""
    return f"<table style='border-collapse:collapse'>{cap}<tr>{head}</tr>{body}</table>"


def merges_table(merges: Sequence[tuple[bytes, bytes]], n: int | None = 15, start: int = 0,
                 first_id: int = 256) -> str:
    """The merges ``start .. start+n`` as a table: rank, left + right, the new token
    and its id (``first_id + rank``: ids 0-255 are the single bytes)."""
    end = len(merges) if n is None else min(len(merges), start + n)
    rows = []
    for rank in range(start, end):
        left, right = merges[rank]
        rows.append((rank, show_bytes(left), show_bytes(right), show_bytes(left + right),
                     first_id + rank))
    return html_table(("merge #", "left", "right", "new token", "token id"), rows)


def trace_table(steps: Sequence[Sequence[bytes]]) -> str:
    """A ``bpe_trace`` as a table: one row per step, the merge just applied, the
    tokens as coloured spans and how many there are."""
    rows = []
    for k, parts in enumerate(steps):
        rows.append((k, _merge_done(steps[k - 1], parts) if k else "(single bytes)",
                     token_html(parts), len(parts)))
    return html_table(("step", "merge applied", "tokens", "count"), rows, raw_columns=(2,))


def _merge_done(before: Sequence[bytes], after: Sequence[bytes]) -> str:
    """Which neighbours of ``before`` were joined to give ``after`` ("a + b → ab")."""
    if len(after) == 1 and len(before) > 2:  # tiktoken's whole-chunk shortcut
        return f"whole chunk is a token → {show_bytes(after[0])}"
    for i, (x, y) in enumerate(zip(before, after)):
        if x != y:
            return f"{show_bytes(before[i])} + {show_bytes(before[i + 1])} → {show_bytes(y)}"
    raise ValueError("the two steps are identical; not a BPE trace")


def count_table(encoders: dict[str, Callable[[str], Sequence[int]]], samples: dict[str, str]
                ) -> str:
    """Tokens per sample under several encoders (any text -> ids function), with
    tokens per byte, as an HTML table: one row per sample, two columns per encoder."""
    header = ["sample", "bytes"]
    for name in encoders:
        header += [f"{name} tokens", f"{name} tokens/byte"]
    rows = []
    for label, text in samples.items():
        n_bytes = len(text.encode("utf-8"))
        row = [label, n_bytes]
        for encode in encoders.values():
            n = len(encode(text))
            row += [n, f"{n / n_bytes:.3f}" if n_bytes else "-"]
        rows.append(row)
    return html_table(header, rows)


# --- OpenAI's encodings, from the local cache only ------------------------------------------
# The files tiktoken downloads for each encoding, with their sha256 (as in tiktoken_ext).
OFFICIAL_FILES = {
    "gpt2": {
        "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/vocab.bpe":
            "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
        "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/encoder.json":
            "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
    },
    "cl100k_base": {
        "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken":
            "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    },
}


def tiktoken_cache_dir() -> Path | None:
    """Where tiktoken keeps downloaded files (None when caching is turned off):
    $TIKTOKEN_CACHE_DIR, else $DATA_GYM_CACHE_DIR, else <tmp>/data-gym-cache."""
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        d = os.environ["TIKTOKEN_CACHE_DIR"]
    elif "DATA_GYM_CACHE_DIR" in os.environ:
        d = os.environ["DATA_GYM_CACHE_DIR"]
    else:
        d = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    return Path(d) if d else None


def official_encoding(name: str):
    """``(encoding, note)``: OpenAI's ``name`` encoding if every file it needs is in
    tiktoken's cache with the right hash, else ``(None, why it was skipped)``.

    ``tiktoken.get_encoding`` would download missing files, which can hang for a
    long time on a machine without internet; this never touches the network
    (it only calls ``get_encoding`` when nothing needs downloading).
    """
    if name not in OFFICIAL_FILES:
        raise ValueError(f"unknown encoding {name!r}; choose one of {sorted(OFFICIAL_FILES)}")
    skipped = f"skipped {name}: tiktoken's encoding files are not cached on this machine"
    cache = tiktoken_cache_dir()
    if cache is None:
        return None, skipped + " (caching is turned off)"
    for url, sha256 in OFFICIAL_FILES[name].items():
        path = cache / hashlib.sha1(url.encode()).hexdigest()
        if not path.is_file():
            return None, skipped
        if hashlib.sha256(path.read_bytes()).hexdigest() != sha256:
            return None, skipped + " (a cached file is corrupt)"
    try:
        import tiktoken

        return tiktoken.get_encoding(name), f"{name}: loaded from the local cache"
    except Exception as err:  # any failure means: show the chapter without it
        return None, f"skipped {name}: {type(err).__name__} while loading it"
