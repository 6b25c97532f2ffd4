"""Tests for llmtrain.viz.tokenviz: coloured tokens, merge and trace tables, cached encodings."""

from __future__ import annotations

import hashlib
import html
import re

import pytest

from llmtrain.core.tokenizer import SPECIAL_TOKENS, bpe_trace, train_bpe
from llmtrain.viz import tokenviz
from llmtrain.viz.tokenviz import (
    PALETTE,
    count_table,
    html_table,
    merges_table,
    official_encoding,
    render_tokens,
    show_bytes,
    token_html,
    token_summary,
    trace_table,
)

TEXT = "low low low low low lower lower newest newest newest newest newest newest " \
       "widest widest widest"


@pytest.fixture(scope="module")
def tiny():
    return train_bpe(TEXT, 256 + len(SPECIAL_TOKENS) + 15)


def spans(out: str) -> list[str]:
    """The inner HTML of each token span."""
    return re.findall(r'<span class="tok"[^>]*>(.*?)</span>', out, flags=re.S)


def test_show_bytes():
    assert show_bytes(b" the") == "␣the"
    assert show_bytes(b" the", visible_space=False) == " the"
    assert show_bytes(b"a\n\tb") == "a↵⇥b"
    assert show_bytes("東".encode()[:2]) == "\\xe6\\x9d"
    assert show_bytes("é".encode()) == "é"
    assert show_bytes(b"") == ""


def test_token_html_one_span_per_token_and_escaped():
    pieces = [b"<b>", b" &", b" x", "東".encode()[:1], "東".encode()[1:]]
    out = token_html(pieces, ids=[1, 2, 3, 4, 5])
    inner = spans(out)
    assert len(inner) == 5
    assert inner[0] == "&lt;b&gt;" and inner[1] == " &amp;"  # escaped, space kept
    assert inner[3] == "\\xe6" and "font-style:italic" in out  # a partial character
    assert "<b>" not in out  # no raw HTML from the text leaks through
    # neighbours get different colours, in palette order
    colours = re.findall(r"background-color:(#[0-9a-f]{6})", out)
    assert colours == [PALETTE[i % len(PALETTE)] for i in range(5)]
    assert all(a != b for a, b in zip(colours, colours[1:]))
    assert "id 3" in out  # ids go into the tooltips
    with pytest.raises(ValueError, match="ids"):
        token_html(pieces, ids=[1])


def test_token_html_show_ids_and_newlines():
    out = token_html([b"a", b"\n", b"b"], ids=[97, 10, 98], show_ids=True)
    assert "<sub" in out and ">10</sub>" in out
    assert "↵\n" in spans(out)[1]


def test_render_tokens_matches_the_tokenizer(tiny):
    text = "the lowest widest 東京 <|endoftext|>"
    out = render_tokens(tiny, text)
    ids = tiny.encode(text, allow_special=False)
    inner = spans(out)
    assert len(inner) == len(ids)
    # the spans of the ASCII part, unescaped, spell it back; the CJK bytes show as escapes
    n_ascii = len(tiny.encode("the lowest widest"))
    assert html.unescape("".join(inner[:n_ascii])) == "the lowest widest"
    assert "\\xe6" in out and "\\xe4" in out  # 東 starts with e6, 京 with e4
    short = render_tokens(tiny, "x" * 50, max_tokens=10)
    assert len(spans(short)) == 10 and "40 more tokens" in short


def test_token_summary(tiny):
    s = token_summary(tiny, " lowest lowest")
    n = len(tiny.encode(" lowest lowest"))
    assert s.startswith(f"{n} tokens for 14 bytes") and "2 words" in s
    assert "0 tokens for 0 bytes" in token_summary(tiny, "")


def test_merges_table(tiny):
    out = merges_table(tiny.merges, n=3)
    assert out.count("<tr>") == 4  # header + 3 merges
    first_left, first_right = tiny.merges[0]
    assert f"<td style='padding:2px 8px;text-align:left;border-bottom:1px solid #ddd'>" \
           f"{show_bytes(first_left + first_right)}</td>" in out
    assert ">256<" in out and ">258<" in out and ">259<" not in out
    assert merges_table(tiny.merges, n=None).count("<tr>") == len(tiny.merges) + 1
    assert merges_table(tiny.merges, n=5, start=13).count("<tr>") == 3  # only 15 merges exist


def test_trace_table(tiny):
    steps = bpe_trace(" lowest", tiny.merges)
    out = trace_table(steps)
    assert out.count("<tr>") == len(steps) + 1
    assert "(single bytes)" in out
    assert "e + s → es" in out and "es + t → est" in out
    assert "␣low + est → ␣lowest" not in out  # never learned: " lowest" stays two tokens
    with pytest.raises(ValueError, match="identical"):
        trace_table([[b"a", b"b"], [b"a", b"b"]])


def test_trace_table_names_every_merge(tiny):
    for word in (" widest", " newer", " lower"):
        steps = bpe_trace(word, tiny.merges)
        out = trace_table(steps)
        for before, after in zip(steps, steps[1:]):
            i = next(i for i, (x, y) in enumerate(zip(before, after)) if x != y)
            assert html.escape(f"{show_bytes(before[i])} + {show_bytes(before[i + 1])}") in out


def test_html_table_escapes_and_checks_widths():
    out = html_table(["a", "b"], [["<x>", "<i>ok</i>"]], raw_columns=(1,), caption="c&d")
    assert "&lt;x&gt;" in out and "<i>ok</i>" in out and "c&amp;d" in out
    with pytest.raises(ValueError, match="cells"):
        html_table(["a", "b"], [[1]])


def test_count_table(tiny):
    out = count_table({"tiny": tiny.encoding.encode_ordinary, "bytes": lambda s: s.encode()},
                      {"word": " lowest", "cjk": "東京"})
    assert out.count("<tr>") == 3
    assert ">6<" in out  # 東京 is 6 bytes, so 6 byte-tokens
    assert ">1.000<" in out


def test_official_encoding_skips_without_cache(tmp_path, monkeypatch):
    import tiktoken

    def no_network(name):
        raise AssertionError("get_encoding must not be called when files are missing")

    monkeypatch.setattr(tiktoken, "get_encoding", no_network)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    for name in ("gpt2", "cl100k_base"):
        enc, note = official_encoding(name)
        assert enc is None and "not cached" in note
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    assert official_encoding("gpt2")[0] is None
    with pytest.raises(ValueError, match="unknown encoding"):
        official_encoding("o999k")


def test_official_encoding_checks_hash_then_loads(tmp_path, monkeypatch):
    import tiktoken

    url, _ = next(iter(tokenviz.OFFICIAL_FILES["cl100k_base"].items()))
    cached = tmp_path / hashlib.sha1(url.encode()).hexdigest()
    cached.write_bytes(b"not the real file")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    calls = []
    monkeypatch.setattr(tiktoken, "get_encoding", lambda name: calls.append(name) or "ENC")
    enc, note = official_encoding("cl100k_base")
    assert enc is None and "corrupt" in note and not calls
    # with the expected hash matching the cached file, get_encoding is called
    monkeypatch.setitem(tokenviz.OFFICIAL_FILES, "cl100k_base",
                        {url: hashlib.sha256(b"not the real file").hexdigest()})
    enc, note = official_encoding("cl100k_base")
    assert enc == "ENC" and calls == ["cl100k_base"] and "loaded" in note

    def broken(name):
        raise OSError("boom")

    monkeypatch.setattr(tiktoken, "get_encoding", broken)
    enc, note = official_encoding("cl100k_base")
    assert enc is None and "OSError" in note


def test_cache_dir_follows_tiktoken(monkeypatch, tmp_path):
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)
    monkeypatch.setenv("DATA_GYM_CACHE_DIR", str(tmp_path))
    assert tokenviz.tiktoken_cache_dir() == tmp_path
    monkeypatch.delenv("DATA_GYM_CACHE_DIR")
    assert tokenviz.tiktoken_cache_dir().name == "data-gym-cache"
