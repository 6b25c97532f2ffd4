"""Byte-level BPE: train a tokenizer, then run it with tiktoken.

The recipe, as used for GPT-2 and its successors:

1. **Pre-split** the text with a regular expression into chunks ("words" with
   their leading space, runs of digits, punctuation, whitespace). Merges never
   cross a chunk boundary, so " the" and "the." stay separate problems.
2. **Start from bytes.** Every chunk is a sequence of UTF-8 bytes, so the 256
   single bytes already spell any text: there is no "unknown" token.
3. **Merge.** Count every adjacent pair of tokens, weighted by how often the
   chunk occurs; the most frequent pair becomes a new token. Repeat until the
   vocabulary is full.

Training is our own Python (``train_bpe``); encoding and decoding are done by a
real ``tiktoken.Encoding`` built from the trained ranks, so the tokenizer is as
fast as the ones used in production. ``bpe_trace`` replays the merges on one
chunk for the chapter that shows BPE step by step.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import json
import os
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import regex
import tiktoken

# The GPT-2 split: contractions, letters, digits, other symbols (each optionally
# after one space), and whitespace, keeping the last space for the next word.
GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
# The GPT-4 (cl100k) split: case-insensitive contractions, a word may take one
# leading non-letter, numbers in groups of at most 3 digits, newlines kept apart.
CL100K_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# Reserved for the chat format of later chapters; they get the highest ids.
SPECIAL_TOKENS = ("<|endoftext|>", "<|pad|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>")

_SURROGATE = regex.compile(r"[\ud800-\udfff]")


def _check_text(text: str) -> None:
    """Reject lone surrogates, which have no UTF-8 form (tiktoken would silently
    replace them with U+FFFD and the round trip would no longer be exact)."""
    if not text.isascii() and (m := _SURROGATE.search(text)):
        raise ValueError(
            f"text has a lone surrogate U+{ord(m.group()):04X} at index {m.start()}, which "
            "cannot be encoded as UTF-8; clean it first, e.g. "
            "text.encode('utf-8', 'replace').decode('utf-8')"
        )


def _special_property(token: str) -> property:
    return property(lambda self: self.special_id(token), doc=f"The id of {token}.")


class Tokenizer:
    """A trained tokenizer: a ``tiktoken.Encoding`` plus the merges that made it."""

    def __init__(self, encoding: tiktoken.Encoding, merges: Sequence[tuple[bytes, bytes]] = ()):
        self.encoding = encoding
        self.merges = list(merges)

    def __repr__(self) -> str:
        return f"Tokenizer(name={self.encoding.name!r}, vocab_size={self.vocab_size})"

    @property
    def vocab_size(self) -> int:
        """Number of token ids: bytes + merged tokens + special tokens."""
        return self.encoding.n_vocab

    # -- encoding and decoding ------------------------------------------------
    def encode(self, text: str, allow_special: bool = True) -> list[int]:
        """Text -> token ids. Special tokens in ``text`` (e.g. "<|user|>") become their
        ids when ``allow_special``; otherwise they are encoded as ordinary text."""
        _check_text(text)
        if allow_special:
            return self.encoding.encode(text, allowed_special="all")
        return self.encoding.encode_ordinary(text)

    def encode_batch(self, texts: Sequence[str], allow_special: bool = True) -> list[list[int]]:
        """Encode many texts at once (tiktoken uses several threads)."""
        for text in texts:
            _check_text(text)
        if allow_special:
            return self.encoding.encode_batch(list(texts), allowed_special="all")
        return self.encoding.encode_ordinary_batch(list(texts))

    def decode_bytes(self, ids: Sequence[int]) -> bytes:
        """Token ids -> the exact bytes they stand for."""
        return self.encoding.decode_bytes(list(ids))

    def decode(self, ids: Sequence[int], errors: str = "replace") -> str:
        """Token ids -> text. Bytes that are not valid UTF-8 (a model can generate
        those) become U+FFFD; pass ``errors="strict"`` to raise instead."""
        return self.decode_bytes(ids).decode("utf-8", errors=errors)

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes of one token id (for a special token, its UTF-8 text)."""
        return self.encoding.decode_single_token_bytes(token_id)

    def piece_bytes(self, text: str, allow_special: bool = True) -> list[bytes]:
        """The exact bytes of each token of ``text``; they concatenate to the input."""
        return [self.token_bytes(i) for i in self.encode(text, allow_special)]

    def pieces(self, text: str, allow_special: bool = True) -> list[str]:
        """The text of each token, for display (e.g. colouring tokens).

        A token may hold part of a multi-byte character; such a piece shows
        U+FFFD. Use ``piece_bytes`` when you need the exact bytes.
        """
        return [b.decode("utf-8", errors="replace") for b in self.piece_bytes(text, allow_special)]

    # -- special tokens -------------------------------------------------------
    def special_id(self, name: str) -> int:
        """Id of a special token, by full name ("<|user|>") or short name ("user")."""
        full = name if name.startswith("<|") else f"<|{name}|>"
        specials = self.encoding._special_tokens
        if full not in specials:
            raise KeyError(f"no special token {full!r}; this tokenizer has {sorted(specials)}")
        return specials[full]

    eot_id = _special_property("<|endoftext|>")
    pad_id = _special_property("<|pad|>")
    system_id = _special_property("<|system|>")
    user_id = _special_property("<|user|>")
    assistant_id = _special_property("<|assistant|>")
    end_id = _special_property("<|end|>")

    # -- saving and loading ---------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write ``path`` (a standard ``.tiktoken`` ranks file: base64 token, space,
        rank) and the sidecar ``<path>.json`` (name, pattern, specials, merges)."""
        path = Path(path)
        # The _underscored attributes are how tiktoken's README extends an Encoding.
        ranks = sorted(self.encoding._mergeable_ranks.items(), key=lambda kv: kv[1])
        lines = (f"{base64.b64encode(tok).decode()} {rank}\n" for tok, rank in ranks)
        data = "".join(lines).encode("ascii")
        meta = {
            "name": self.encoding.name,
            "pattern": self.encoding._pat_str,
            "special_tokens": self.encoding._special_tokens,
            "num_merges": len(self.merges),
            "merges": [[base64.b64encode(a).decode(), base64.b64encode(b).decode()]
                       for a, b in self.merges],
            "ranks_sha256": hashlib.sha256(data).hexdigest(),
        }
        _atomic_write(path, data)
        _atomic_write(_sidecar(path), json.dumps(meta, indent=1).encode("utf-8"))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Tokenizer:
        """Read a tokenizer written by ``save``; errors name the bad file."""
        path, side = Path(path), _sidecar(Path(path))
        for p in (path, side):
            if not p.is_file():
                raise FileNotFoundError(
                    f"tokenizer file {p} not found: restore it from where it came from (for a "
                    f"committed tokenizer: git checkout -- {p}), or train one with "
                    f"train_bpe(...) and call .save({str(path)!r}) (it writes both {path.name} "
                    f"and {side.name})"
                )
        data = path.read_bytes()
        try:
            meta = json.loads(side.read_text(encoding="utf-8"))
            expected, pattern = meta["ranks_sha256"], meta["pattern"]
            specials = {str(k): int(v) for k, v in meta["special_tokens"].items()}
            merges = [(base64.b64decode(a), base64.b64decode(b)) for a, b in meta["merges"]]
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(
                f"corrupt tokenizer sidecar {side}: {err!r}; the file was cut short or edited: "
                f"restore it and {path.name} from where they came from (e.g. git checkout -- "
                f"{side} {path}), or write both again with .save(...) from the tokenizer object "
                "that made them") from err
        if hashlib.sha256(data).hexdigest() != expected:
            raise ValueError(
                f"ranks file {path} does not match the sha256 stored in {side}: one of the two "
                "was cut short or edited, or they come from different saves: restore both from "
                f"where they came from (e.g. git checkout -- {path} {side}), or write both again "
                "with .save(...) from the tokenizer object that made them"
            )
        ranks = _parse_ranks(data, path)
        enc = tiktoken.Encoding(
            name=meta.get("name", path.stem), pat_str=pattern,
            mergeable_ranks=ranks, special_tokens=specials,
        )
        return cls(enc, merges)


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same directory, then rename it over
    ``path``: a crash leaves either the old file or the new one, never half."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _parse_ranks(data: bytes, path: Path) -> dict[bytes, int]:
    """Parse a ``.tiktoken`` file. (``tiktoken.load.load_tiktoken_bpe`` reads the same
    format but caches by path name, so it can return a stale copy of a re-saved file.)"""
    ranks: dict[bytes, int] = {}
    for lineno, line in enumerate(data.splitlines(), start=1):
        try:
            tok, rank = line.split()
            ranks[base64.b64decode(tok, validate=True)] = int(rank)
        except ValueError as err:  # binascii.Error is a ValueError too
            raise ValueError(f"corrupt ranks file {path}, line {lineno}: {line[:60]!r}; restore "
                             "it (e.g. git checkout), or save the tokenizer again with .save(...)"
                             ) from err
    if sorted(ranks.values()) != list(range(len(ranks))) or len(ranks) < 256:
        raise ValueError(f"corrupt ranks file {path}: ranks must be 0..n-1 with n >= 256; restore "
                         "it (e.g. git checkout), or save the tokenizer again with .save(...)")
    return ranks


# -- training -------------------------------------------------------------------
def count_chunks(
    text: str | Iterable[str], pattern: str = GPT2_PATTERN, special_tokens: Sequence[str] = ()
) -> Counter[str]:
    """Pre-split ``text`` (one string, or an iterable of documents) and count the chunks.
    Special tokens are cut out first, so they never become part of a merge."""
    split = regex.compile(pattern)
    if split.groups:
        raise ValueError("the split pattern must not have capturing groups: use (?:...)")
    cut = regex.compile("|".join(map(regex.escape, special_tokens))) if special_tokens else None
    counts: Counter[str] = Counter()
    for doc in [text] if isinstance(text, str) else text:
        for part in cut.split(doc) if cut else [doc]:
            counts.update(split.findall(part))
    return counts


def train_bpe(
    text: str | Iterable[str],
    vocab_size: int,
    *,
    pattern: str = GPT2_PATTERN,
    special_tokens: Sequence[str] = SPECIAL_TOKENS,
    name: str = "course",
) -> Tokenizer:
    """Train a byte-level BPE tokenizer with ``vocab_size`` ids in total
    (256 bytes + merged tokens + special tokens).

    Stops early, with a smaller vocabulary, when no pair occurs twice. Ties
    between equally frequent pairs go to the pair with the smaller bytes, so
    training is reproducible.
    """
    if len(set(special_tokens)) != len(special_tokens):
        raise ValueError(f"special tokens must be distinct, got {list(special_tokens)}")
    if vocab_size < 256 + len(special_tokens):
        raise ValueError(
            f"vocab_size={vocab_size} is too small: it must hold the 256 byte tokens and the "
            f"{len(special_tokens)} special tokens, so use at least {256 + len(special_tokens)}"
        )
    chunks = count_chunks(text, pattern, special_tokens)
    vocab, merges = _learn_merges(chunks, vocab_size - len(special_tokens))
    encoding = tiktoken.Encoding(
        name=name, pat_str=pattern,
        mergeable_ranks={tok: rank for rank, tok in enumerate(vocab)},
        special_tokens={s: len(vocab) + i for i, s in enumerate(special_tokens)},
    )
    return Tokenizer(encoding, merges)


def _learn_merges(chunks: Counter[str], n_tokens: int) -> tuple[list[bytes], list[tuple]]:
    """The BPE loop. Returns the vocabulary (index = rank) and the merges in order.

    Bookkeeping that makes it fast: ``count[pair]`` (occurrences weighted by
    chunk frequency) and ``where[pair]`` (ids of the chunks containing it). A
    merge only revisits the chunks in ``where[pair]``. The most frequent pair
    comes from a max-heap whose entries may be stale: an entry is trusted only
    if its count is still the current one, otherwise it is re-pushed or dropped.
    """
    vocab = [bytes([i]) for i in range(256)]  # token id -> bytes
    index = {tok: i for i, tok in enumerate(vocab)}  # bytes -> token id
    try:
        words = [list(chunk.encode("utf-8")) for chunk in chunks]
    except UnicodeEncodeError as err:
        raise ValueError(f"training text is not valid UTF-8 (lone surrogate?): {err}") from err
    freq = list(chunks.values())
    count: defaultdict[tuple[int, int], int] = defaultdict(int)
    where: defaultdict[tuple[int, int], set[int]] = defaultdict(set)
    for w, word in enumerate(words):
        for pair in zip(word, word[1:]):
            count[pair] += freq[w]
            where[pair].add(w)
    # Heap entries: (-count, left bytes, right bytes, left id, right id).
    heap = [(-c, vocab[a], vocab[b], a, b) for (a, b), c in count.items()]
    heapq.heapify(heap)
    merges: list[tuple[bytes, bytes]] = []
    while len(vocab) < n_tokens and heap:
        neg, left, right, a, b = heapq.heappop(heap)
        current = count.get((a, b), 0)
        if current != -neg:  # stale entry
            if 0 < current < -neg:
                heapq.heappush(heap, (-current, left, right, a, b))
            continue
        if current < 2:
            break  # nothing occurs twice any more: stop early
        merges.append((left, right))
        new = index.get(left + right)
        # If the bytes were already a token, reuse its id. (With whole chunks merged
        # left to right as here this cannot happen, but the rule keeps tokens unique.)
        if new is None:
            new = index[left + right] = len(vocab)
            vocab.append(left + right)
        delta: Counter[tuple[int, int]] = Counter()
        for w in where.pop((a, b)):  # only the chunks that contain the pair
            old_pairs = list(zip(words[w], words[w][1:]))
            words[w] = _merge(words[w], a, b, new)
            new_pairs = list(zip(words[w], words[w][1:]))
            for pair in old_pairs:
                delta[pair] -= freq[w]
            for pair in new_pairs:
                delta[pair] += freq[w]
                where[pair].add(w)
            for pair in set(old_pairs).difference(new_pairs):
                where[pair].discard(w)
        for pair, d in delta.items():
            if d == 0:
                continue
            count[pair] += d
            if count[pair] <= 0:
                del count[pair]
                where.pop(pair, None)
            elif d > 0:
                heapq.heappush(heap, (-count[pair], vocab[pair[0]], vocab[pair[1]], *pair))
    return vocab, merges


def _merge(word: list[int], a: int, b: int, new: int) -> list[int]:
    """Replace every (a, b) in ``word``, left to right, by ``new``."""
    out, i, n = [], 0, len(word)
    while i < n:
        if i + 1 < n and word[i] == a and word[i + 1] == b:
            out.append(new)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return out


# -- teaching helpers -------------------------------------------------------------
def bpe_trace(
    text_chunk: str, merges: Sequence[tuple[bytes, bytes]], max_steps: int | None = None
) -> list[list[bytes]]:
    """Every tokenization of one chunk as BPE runs: step 0 is single bytes, each
    next step applies one merge, the lowest-ranked first (leftmost on a tie).

    This is exactly the rule tiktoken uses: two neighbours merge when their
    concatenation is a token, and the token's rank (the index of the merge that
    first made it) decides the order. One more tiktoken rule: a chunk that is
    itself a token is returned whole, even if the merges would get stuck before
    (rare); the trace then ends with that one-token step. So the last step
    equals ``encode`` of the chunk.
    """
    ranks: dict[bytes, int] = {}
    for i, (left, right) in enumerate(merges):
        ranks.setdefault(left + right, i)
    parts = [bytes([byte]) for byte in text_chunk.encode("utf-8")]
    steps = [parts]
    while max_steps is None or len(steps) <= max_steps:
        found = [(ranks.get(x + y), i) for i, (x, y) in enumerate(zip(parts, parts[1:]))]
        found = [f for f in found if f[0] is not None]
        if not found:
            break
        _, i = min(found)
        parts = parts[:i] + [parts[i] + parts[i + 1]] + parts[i + 2 :]
        steps.append(parts)
    whole = b"".join(parts)
    if len(parts) > 1 and whole in ranks and (max_steps is None or len(steps) <= max_steps):
        steps.append([whole])  # tiktoken's shortcut: a chunk that is a token stays whole
    return steps


def compression_stats(tokenizer: Tokenizer, text: str) -> dict[str, float]:
    """How well ``tokenizer`` compresses ``text`` (special tokens read as plain text)."""
    n_bytes = len(text.encode("utf-8"))
    n_tokens = len(tokenizer.encode(text, allow_special=False))
    return {
        "bytes": n_bytes,
        "tokens": n_tokens,
        "tokens_per_byte": n_tokens / n_bytes if n_bytes else 0.0,
        "bytes_per_token": n_bytes / n_tokens if n_tokens else 0.0,
    }
