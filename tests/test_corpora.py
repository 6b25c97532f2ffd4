"""Tests for llmtrain.world.corpora: built-in corpora, file loading errors, describe and mix."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from llmtrain.world.corpora import (
    describe,
    load_text_file,
    load_text_files,
    mix,
    python_code,
    python_code_documents,
    python_prose,
    python_prose_documents,
)

# --- built-in corpora ---------------------------------------------------------------------------


def test_prose_is_large_and_deterministic():
    text = python_prose()
    assert len(text) > 300_000
    assert text == python_prose()
    docs = python_prose_documents()
    assert len(docs) > 50 and all(docs)
    assert text == "\n\n".join(docs)


def test_prose_truncates_at_paragraph_boundary():
    full = python_prose()
    short = python_prose(max_chars=10_000)
    assert 0 < len(short) <= 10_000
    assert full.startswith(short)
    assert full[len(short) :].startswith("\n\n")
    assert python_prose(max_chars=len(full) + 5) == full


def test_code_is_python_and_deterministic():
    code = python_code(max_chars=200_000)
    assert 100_000 < len(code) <= 200_000
    assert "def " in code and "import " in code
    assert code == python_code(max_chars=200_000)
    assert code != python_code(max_chars=200_000, seed=1)


def test_code_documents_limits():
    docs = python_code_documents(max_files=3, max_chars=None)
    assert len(docs) == 3
    assert docs == python_code_documents(max_files=3, max_chars=None)
    small = python_code_documents(max_chars=50_000)
    assert sum(map(len, small)) + 2 * (len(small) - 1) <= 50_000
    compile(small[0], "<stdlib>", "exec")  # a whole file, not a fragment


# --- load_text_file ----------------------------------------------------------------------------


def test_load_text_file_reads_text(tmp_path: Path):
    p = tmp_path / "a.txt"
    p.write_text("hello wörld\n", encoding="utf-8")
    assert load_text_file(p) == "hello wörld\n"
    q = tmp_path / "b.txt"
    q.write_text("second", encoding="utf-8")
    assert load_text_files([p, str(q)]) == ["hello wörld\n", "second"]
    assert load_text_files(p) == ["hello wörld\n"]


def test_missing_file_names_path_and_cwd(tmp_path: Path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(FileNotFoundError) as e:
        load_text_file(missing)
    assert "nope.txt" in str(e.value) and os.getcwd() in str(e.value)


def test_directory(tmp_path: Path):
    with pytest.raises(IsADirectoryError, match="directory"):
        load_text_file(tmp_path)


@pytest.mark.parametrize("content", [b"", b"  \n\t\n  "])
def test_empty_or_whitespace(tmp_path: Path, content: bytes):
    p = tmp_path / "empty.txt"
    p.write_bytes(content)
    with pytest.raises(ValueError, match="empty|whitespace"):
        load_text_file(p)


def test_binary_png(tmp_path: Path):
    p = tmp_path / "image.png"
    p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00" + bytes(range(256)))
    with pytest.raises(ValueError, match="binary"):
        load_text_file(p)


def test_control_bytes_without_nul(tmp_path: Path):
    p = tmp_path / "weird.bin"
    p.write_bytes(b"\x01\x02\x03\x04abc" * 100)
    with pytest.raises(ValueError, match="binary"):
        load_text_file(p)


def test_invalid_utf8_says_offset_and_latin1(tmp_path: Path):
    p = tmp_path / "old.txt"
    p.write_bytes(b"caf\xe9 au lait")  # latin-1 'é'
    with pytest.raises(ValueError) as e:
        load_text_file(p)
    assert "byte 3" in str(e.value) and "latin-1" in str(e.value)
    assert load_text_file(p, encoding="latin-1") == "café au lait"


def test_too_large(tmp_path: Path):
    p = tmp_path / "big.txt"
    p.write_text("x" * 1000, encoding="utf-8")
    with pytest.raises(ValueError, match="max_bytes"):
        load_text_file(p, max_bytes=100)
    assert len(load_text_file(p, max_bytes=None)) == 1000


# --- describe and mix --------------------------------------------------------------------------


def test_describe():
    assert describe("héllo world\nbye") == {"chars": 15, "bytes": 16, "lines": 2, "words": 3}
    assert describe("") == {"chars": 0, "bytes": 0, "lines": 0, "words": 0}
    assert describe("a\n")["lines"] == 1


def _sources() -> dict[str, list[str]]:
    rng = random.Random(123)
    return {
        name: [letter * rng.randint(50, 500) for _ in range(300)]
        for name, letter in [("prose", "p"), ("code", "c"), ("math", "m")]
    }


def test_mix_proportions():
    out = mix(_sources(), {"prose": 6, "code": 3, "math": 1}, total_chars=1_000_000, seed=0)
    chars = {"prose": 0, "code": 0, "math": 0}
    for name, doc in out:
        assert doc[0] == name[0]  # each document is labelled with its own source
        chars[name] += len(doc)
    total = sum(chars.values())
    assert abs(total - 1_000_000) < 2_000
    for name, share in [("prose", 0.6), ("code", 0.3), ("math", 0.1)]:
        assert abs(chars[name] / total - share) < 0.01


def test_mix_deterministic_and_seeded():
    src = _sources()
    w = {"prose": 1.0, "code": 1.0}
    a = mix(src, w, total_chars=50_000, seed=1)
    assert a == mix(src, w, total_chars=50_000, seed=1)
    assert a != mix(src, w, total_chars=50_000, seed=2)
    assert {name for name, _ in a} == {"prose", "code"}  # unweighted "math" left out
    assert [n for n, _ in a] != sorted(n for n, _ in a)  # sources are interleaved


@pytest.mark.parametrize(
    "weights",
    [{"prose": -1.0, "code": 2.0}, {"prose": 0.0, "code": 0.0}, {"poetry": 1.0}, {}],
)
def test_mix_bad_weights(weights: dict[str, float]):
    with pytest.raises(ValueError):
        mix(_sources(), weights, total_chars=1000, seed=0)
