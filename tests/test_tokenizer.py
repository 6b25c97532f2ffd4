"""Tests for llmtrain.core.tokenizer: BPE training, the tiktoken encoding, save/load."""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from pydoc_data.topics import topics

import pytest
import tiktoken
import tiktoken.load

from llmtrain.core.tokenizer import (
    CL100K_PATTERN,
    GPT2_PATTERN,
    SPECIAL_TOKENS,
    Tokenizer,
    bpe_trace,
    compression_stats,
    count_chunks,
    train_bpe,
)

# Python's own documentation (ships with Python) plus some non-English text.
CORPUS = "\n".join(topics[k] for k in sorted(topics))[:20_000] + (
    "Unicode too: café, naïve, Zürich, 東京は日本の首都です, Привет мир, 🙂🚀 emoji!\n"
    "Don't stop: we'll see, they've gone, I'm here, it's fine. 1234567 + 89 = 1234656.\n"
) * 5


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return train_bpe(CORPUS, 600)


def random_unicode(rng: random.Random, max_len: int = 40) -> str:
    """A random string mixing ASCII, accents, combining marks, CJK, emoji, and
    any valid code point (surrogates excluded: they have no UTF-8 form)."""
    ranges = [(0x20, 0x7E), (0x00, 0x1F), (0xA0, 0x17F), (0x300, 0x36F), (0x4E00, 0x9FFF),
              (0x1F300, 0x1FAFF), (0x0, 0x10FFFF)]
    out = []
    for _ in range(rng.randint(0, max_len)):
        lo, hi = rng.choice(ranges)
        cp = rng.randint(lo, hi)
        out.append(chr(cp if not 0xD800 <= cp <= 0xDFFF else 0xFFFD))
    return "".join(out)


def naive_bpe(text: str, n_merges: int) -> list[tuple[bytes, bytes]]:
    """Textbook BPE, recounting every pair at every step: the reference for the fast one."""
    words = {tuple(bytes([b]) for b in w.encode()): c for w, c in count_chunks(text).items()}
    merges = []
    for _ in range(n_merges):
        pairs: Counter[tuple[bytes, bytes]] = Counter()
        for w, c in words.items():
            for p in zip(w, w[1:]):
                pairs[p] += c
        if not pairs or max(pairs.values()) < 2:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        new_words = {}
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new_words[tuple(out)] = c
        words = new_words
    return merges


def test_roundtrip_random_unicode(tok):
    rng = random.Random(1234)
    texts = [random_unicode(rng) for _ in range(300)]
    for text in texts:
        assert tok.decode(tok.encode(text, allow_special=False)) == text
        assert b"".join(tok.piece_bytes(text)) == text.encode("utf-8")
    assert [tok.decode(ids) for ids in tok.encode_batch(texts)] == texts


def test_roundtrip_tricky_strings(tok):
    for text in ["", " ", "\n\n\n", "  a  ", "e\u0301", "👨‍👩‍👧", "\x00\x7f", "a<|pad|>b"]:
        assert tok.decode(tok.encode(text)) == text


def test_lone_surrogate_is_rejected(tok):
    with pytest.raises(ValueError, match="surrogate"):
        tok.encode("ok \ud800 not ok")
    with pytest.raises(ValueError, match="surrogate"):
        train_bpe("bad \udfff text", 300)


def test_training_is_deterministic():
    docs = CORPUS.splitlines()
    a = train_bpe(docs, 500)
    b = train_bpe(list(reversed(docs)), 500)  # same counts, other order
    assert a.merges == b.merges
    assert a.encoding._mergeable_ranks == b.encoding._mergeable_ranks


def test_first_merges_on_tiny_corpus():
    tok = train_bpe(" ".join(["aaab"] * 10), 256 + 4, special_tokens=())
    # (a,a) is most frequent; then (a,b) and (aa,a) tie and the smaller bytes win.
    assert tok.merges == [(b"a", b"a"), (b"a", b"b"), (b"aa", b"ab"), (b" ", b"aaab")]
    assert tok.encode(" aaab") == [256 + 3]


def test_fast_training_matches_naive_bpe():
    text = CORPUS[:3000]
    assert train_bpe(text, 256 + 150, special_tokens=()).merges == naive_bpe(text, 150)


def test_encode_equals_bpe_trace(tok):
    chunks = ["The", " tokenizers", " function", " Zürich", " 東京", "🙂🚀", " unseen", "1234"]
    for chunk in chunks:
        steps = bpe_trace(chunk, tok.merges)
        assert steps[0] == [bytes([b]) for b in chunk.encode()]
        assert all(len(s) == len(t) + 1 for s, t in zip(steps, steps[1:]))
        assert [tok.encoding.encode_single_token(p) for p in steps[-1]] == tok.encode(chunk)
    assert len(bpe_trace(" tokenizers", tok.merges, max_steps=2)) == 3


def test_vocab_layout(tok):
    assert tok.vocab_size == 600
    assert len(tok.merges) == 600 - 256 - len(SPECIAL_TOKENS)
    tokens = [tok.token_bytes(i) for i in range(600 - len(SPECIAL_TOKENS))]
    assert tokens[:256] == [bytes([i]) for i in range(256)]
    assert tokens[256:] == [a + b for a, b in tok.merges]
    assert len(set(tokens)) == len(tokens)


def test_special_tokens(tok):
    ids = [tok.special_id(s) for s in SPECIAL_TOKENS]
    assert ids == list(range(tok.vocab_size - len(SPECIAL_TOKENS), tok.vocab_size))
    assert (tok.eot_id, tok.pad_id, tok.system_id) == tuple(ids[:3])
    assert (tok.user_id, tok.assistant_id, tok.end_id) == tuple(ids[3:])
    assert tok.special_id("user") == tok.user_id
    ids = tok.encode("<|user|>hi<|end|>")
    assert ids[0] == tok.user_id and ids[-1] == tok.end_id
    plain = tok.encode("<|user|>hi<|end|>", allow_special=False)
    assert not set(plain) & set(tok.encoding._special_tokens.values())
    assert tok.decode(plain) == "<|user|>hi<|end|>"
    with pytest.raises(KeyError, match="no special token"):
        tok.special_id("tool")


def test_special_tokens_are_not_learned():
    tok = train_bpe("hello<|endoftext|>" * 50, 300)
    assert not any(b"|" in a + b for a, b in tok.merges)


def test_vocab_size_too_small():
    with pytest.raises(ValueError, match="at least 262"):
        train_bpe(CORPUS, 261)
    assert train_bpe(CORPUS, 262).merges == []


def test_stops_early_when_no_pair_repeats():
    tok = train_bpe("abcd", 1000)
    assert tok.merges == [] and tok.vocab_size == 256 + len(SPECIAL_TOKENS)


def test_more_vocab_fewer_tokens():
    per_byte = [compression_stats(train_bpe(CORPUS, v), CORPUS)["tokens_per_byte"]
                for v in (300, 450, 800)]
    assert per_byte[0] > per_byte[1] > per_byte[2]
    stats = compression_stats(train_bpe(CORPUS, 300), "abc")
    assert stats["bytes"] == 3 and stats["bytes_per_token"] * stats["tokens"] == 3


def test_pieces(tok):
    text = "The fox 🙂"
    assert len(tok.pieces(text)) == len(tok.encode(text))
    assert "".join(tok.pieces("The fox")) == "The fox"
    small = train_bpe("abc", 300)  # no merges: an emoji is 4 single-byte tokens
    assert small.pieces("🙂") == ["\ufffd"] * 4
    assert b"".join(small.piece_bytes("🙂")) == "🙂".encode()


def test_cl100k_pattern():
    tok = train_bpe(CORPUS, 400, pattern=CL100K_PATTERN)
    assert tok.decode(tok.encode(CORPUS)) == CORPUS
    assert count_chunks("12345 abc", CL100K_PATTERN) == Counter(["123", "45", " abc"])
    # digits never merge across the 3-digit groups
    assert all(len(p) <= 3 for p in tok.pieces("1234567"))
    assert count_chunks("it's", GPT2_PATTERN) == Counter(["it", "'s"])


def test_save_load_roundtrip(tok, tmp_path, monkeypatch):
    path = tmp_path / "course.tiktoken"
    tok.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["course.tiktoken", "course.tiktoken.json"]
    loaded = Tokenizer.load(path)
    assert loaded.merges == tok.merges and loaded.vocab_size == tok.vocab_size
    assert loaded.encoding.name == "course" and loaded.user_id == tok.user_id
    text = CORPUS[:500] + "<|assistant|>🙂"
    assert loaded.encode(text) == tok.encode(text)
    # the ranks file is the standard format tiktoken itself reads (caching off)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    assert tiktoken.load.load_tiktoken_bpe(str(path)) == tok.encoding._mergeable_ranks


def test_load_missing_files(tok, tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.tiktoken"):
        Tokenizer.load(tmp_path / "nope.tiktoken")
    path = tmp_path / "t.tiktoken"
    tok.save(path)
    (tmp_path / "t.tiktoken.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"t\.tiktoken\.json"):
        Tokenizer.load(path)


def test_load_corrupt_files(tok, tmp_path):
    path = tmp_path / "t.tiktoken"
    tok.save(path)
    side = tmp_path / "t.tiktoken.json"
    good_ranks, good_side = path.read_bytes(), side.read_text()
    path.write_bytes(good_ranks.replace(b" 300\n", b" 301\n"))
    with pytest.raises(ValueError, match="sha256"):
        Tokenizer.load(path)
    path.write_bytes(good_ranks)
    side.write_text(good_side[:40])
    with pytest.raises(ValueError, match="corrupt tokenizer sidecar"):
        Tokenizer.load(path)
    # a bad line in a ranks file whose hash was updated too
    bad = good_ranks + b"not-base64!! x\n"
    tok.save(path)
    path.write_bytes(bad)
    meta = json.loads(side.read_text())
    meta["ranks_sha256"] = hashlib.sha256(bad).hexdigest()
    side.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="corrupt ranks file .*line"):
        Tokenizer.load(path)


def test_tiktoken_returns_a_whole_chunk_that_is_a_token():
    # Hand-made ranks where BPE alone gets stuck at [a, bc, d] but "abcd" is a token.
    ranks = {bytes([i]): i for i in range(256)}
    for i, t in enumerate([b"bc", b"ab", b"cd", b"abcd"]):
        ranks[t] = 256 + i
    enc = tiktoken.Encoding("t", pat_str=r"\S+|\s+", mergeable_ranks=ranks, special_tokens={})
    merges = [(b"b", b"c"), (b"a", b"b"), (b"c", b"d"), (b"ab", b"cd")]
    steps = bpe_trace("abcd", merges)
    assert steps[-2] == [b"a", b"bc", b"d"] and steps[-1] == [b"abcd"]
    assert enc.encode("abcd") == [259]
