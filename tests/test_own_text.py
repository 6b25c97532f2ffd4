"""Tests for llmtrain.pretrain.own_text: clear errors for bad files, and one real run."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest

from llmtrain.pretrain.own_text import MIN_CHARS, read_text, split_text, train_on_text


def test_missing_file_says_where_it_looked(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="No file at"):
        read_text(tmp_path / "nope.txt")


def test_empty_file(tmp_path: Path):
    p = tmp_path / "empty.txt"
    p.write_bytes(b"")
    with pytest.raises(ValueError, match="is empty"):
        read_text(p)


def test_binary_file(tmp_path: Path):
    p = tmp_path / "picture.png"
    p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 40)
    with pytest.raises(ValueError, match="looks like a binary file"):
        read_text(p)


def test_not_utf8_names_the_byte_and_a_way_out(tmp_path: Path):
    p = tmp_path / "latin1.txt"
    p.write_bytes(("caf\u00e9 au lait\n" * 3000).encode("latin-1"))
    with pytest.raises(ValueError, match=r"not valid utf-8: byte 3 is b'\\xe9'.*iconv"):
        read_text(p)
    text, note = read_text(p, encoding="latin-1")  # the hint works
    assert text.startswith("café") and note == ""


def test_tiny_file_says_how_much_is_needed(tmp_path: Path):
    p = tmp_path / "tiny.txt"
    p.write_text("A short note.\n" * 100, encoding="utf-8")
    needs = f"1,400 characters; training needs at least {MIN_CHARS:,}"
    with pytest.raises(ValueError, match=needs):
        read_text(p)


def test_huge_file_is_cut_on_a_line_break_with_a_note(tmp_path: Path):
    p = tmp_path / "huge.txt"
    line = "All work and no play makes a long file.\n"  # 40 characters
    p.write_text(line * 3_000, encoding="utf-8")
    text, note = read_text(p, max_chars=50_010)
    assert len(text) == 50_000 and text.endswith("\n")
    assert "has 120,000 characters; kept the first 50,000" in note
    text, note = read_text(p)  # under the default limit: unchanged, no note
    assert len(text) == 120_000 and note == ""


def test_split_keeps_every_character():
    train, held = split_text("x" * 1000)
    assert (len(train), len(held)) == (900, 100)


def real_text_file() -> Path:
    """A real text the test did not write: a licence text if the system has one, else
    the standard library's argparse.py (over 80 KB, in every Python)."""
    gpl = Path("/usr/share/common-licenses/GPL-3")
    if gpl.is_file():
        return gpl
    return Path(sysconfig.get_paths()["stdlib"]) / "argparse.py"


@pytest.mark.slow
def test_trained_model_beats_the_unigram_baseline():
    path = real_text_file()
    text, note = read_text(path)
    assert note == "" and len(text) >= MIN_CHARS
    run = train_on_text(text, vocab_size=384, preset="nano", steps=120, seed=0, device="cpu")
    bpb = run.bits_per_byte
    assert set(bpb) == {"GPT", "unigram", "gzip"}
    assert bpb["GPT"] < bpb["unigram"], f"{path}: {bpb}"
    assert 0 < bpb["gzip"] < 8
    assert run.heldout_bytes == len(split_text(text)[1].encode("utf-8"))
    assert run.history.steps[-1] == 120
    samples = run.samples(n=2, max_new_tokens=20, temperature=0.8, seed=1)
    assert len(samples) == 2 and all(isinstance(s, str) for s in samples)
    assert samples == run.samples(n=2, max_new_tokens=20, temperature=0.8, seed=1)  # seeded
    assert run.samples(n=1, prompt="The ")[0].startswith("The ")
