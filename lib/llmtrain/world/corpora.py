"""Real text that ships with Python, so every chapter runs offline.

* ``python_prose()`` is English reference prose: the help topics behind
  ``help("if")``, about 465 KB of it, in a fixed order.
* ``python_code()`` is source code: the pure-Python modules of the standard
  library, a few MB of it.
* ``load_text_file()`` reads your own text and explains what to change when
  the file is missing, binary, in another encoding, empty or too large.
* ``mix()`` samples documents from several sources in chosen proportions,
  the way real pretraining mixtures are built.

Both built-in corpora depend on your Python version (3.11 and 3.12 ship
different docs and code), but are identical on every machine with the same one.
"""

from __future__ import annotations

import os
import random
import sysconfig
from collections.abc import Iterable
from pathlib import Path

_SEP = "\n\n"  # documents are joined by one blank line


def python_prose_documents() -> list[str]:
    """Python's reference help topics, one document per topic, sorted by topic name."""
    from pydoc_data.topics import topics  # the data behind help("topic"), part of the stdlib

    docs = (topics[name].strip() for name in sorted(topics))
    return [d for d in docs if d]


def python_prose(max_chars: int | None = None) -> str:
    """All help topics joined by blank lines; at most ``max_chars`` characters if given.

    The cut falls on a paragraph boundary (a blank line), so you never get half a
    sentence at the end, only a slightly shorter text.
    """
    text = _SEP.join(python_prose_documents())
    if max_chars is None or len(text) <= max_chars:
        return text
    if max_chars < 0:
        raise ValueError(f"max_chars must be >= 0 or None, got {max_chars}")
    cut = text.rfind(_SEP, 0, max_chars + 1)
    return text[:cut] if cut > 0 else text[:max_chars]


def _stdlib_files(seed: int) -> list[Path]:
    """Top-level ``*.py`` files of the standard library: sorted by name, then shuffled."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(
        (p for p in stdlib.glob("*.py") if p.is_file() and not p.name.startswith("test_")),
        key=lambda p: p.name,
    )  # glob is top-level only, so site-packages/ and test/ directories never appear
    random.Random(seed).shuffle(files)
    return files


def python_code_documents(
    max_files: int | None = None, max_chars: int | None = 1_000_000, seed: int = 0
) -> list[str]:
    """Source files of the pure-Python standard library, one document per file.

    Files come in a seeded random order (the same for the same ``seed`` and Python
    version); a file that would overflow ``max_chars`` is skipped in favour of a
    smaller one, so the budget is filled with whole files only. Files that are not
    valid UTF-8 are skipped. ``max_chars`` counts one blank line between files,
    so ``python_code(max_chars=n)`` is at most n characters long.
    """
    docs: list[str] = []
    used = 0
    for path in _stdlib_files(seed):
        if max_files is not None and len(docs) >= max_files:
            break
        try:
            doc = path.read_text(encoding="utf-8").strip()
        except (UnicodeDecodeError, OSError):
            continue
        cost = len(doc) + (len(_SEP) if docs else 0)
        if not doc or (max_chars is not None and used + cost > max_chars):
            continue
        docs.append(doc)
        used += cost
    return docs


def python_code(max_chars: int = 1_000_000, seed: int = 0) -> str:
    """Standard-library source code, whole files joined by blank lines (<= ``max_chars``).

    The contents depend on the Python version; the same version and seed always
    give the same text.
    """
    return _SEP.join(python_code_documents(max_chars=max_chars, seed=seed))


def _looks_binary(head: bytes) -> bool:
    """True for NUL bytes, or >10% control bytes (whitespace and ESC don't count)."""
    if b"\x00" in head:
        return True
    control = sum(1 for b in head if (b < 32 and b not in b"\t\n\r\x0b\x0c\x1b") or b == 127)
    return control > 0.10 * len(head)


def load_text_file(
    path: str | os.PathLike[str], *, encoding: str = "utf-8", max_bytes: int | None = 50_000_000
) -> str:
    """Read a text file of your own, with errors that say what to change.

    Raises ``FileNotFoundError`` (wrong path), ``IsADirectoryError`` (a folder),
    or ``ValueError`` for a file that is empty, binary (an image, a zip, ...),
    not valid in ``encoding``, or larger than ``max_bytes`` (pass
    ``max_bytes=None`` to lift the limit).
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(
            f"No file at '{path}'. Relative paths start from the current working "
            f"directory, which is {Path.cwd()}; check the path from there or pass an "
            "absolute path."
        )
    if p.is_dir():
        raise IsADirectoryError(
            f"'{path}' is a directory, not a file. Pass one file, or several with "
            f"load_text_files(sorted(Path('{path}').glob('*.txt')))."
        )
    size = p.stat().st_size
    if max_bytes is not None and size > max_bytes:
        raise ValueError(
            f"'{path}' is {size:,} bytes, more than max_bytes={max_bytes:,}. Pass a larger "
            "max_bytes (or max_bytes=None), or split the file into smaller ones."
        )
    data = p.read_bytes()
    if not data:
        raise ValueError(f"'{path}' is empty (0 bytes); there is no text to train on.")
    if not encoding.lower().replace("-", "").replace("_", "").startswith(("utf16", "utf32")):
        if _looks_binary(data[:8192]):
            raise ValueError(
                f"'{path}' looks like a binary file (an image, archive or program?), "
                "not text. Pass a plain-text file such as .txt, .md or .py."
            )
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as e:
        raise ValueError(
            f"'{path}' is not valid {encoding}: byte {e.start} is {data[e.start : e.start + 1]!r}. "
            'If the file uses an older encoding, try load_text_file(path, encoding="latin-1").'
        ) from e
    if not text.strip():
        raise ValueError(f"'{path}' contains only whitespace; there is no text to train on.")
    return text


def load_text_files(
    paths: Iterable[str | os.PathLike[str]] | str | os.PathLike[str], **kwargs: object
) -> list[str]:
    """``load_text_file`` for each path, in order; keyword arguments are passed on."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]  # one path, not an iterable of characters
    return [load_text_file(p, **kwargs) for p in paths]  # type: ignore[arg-type]


def describe(text: str) -> dict[str, int]:
    """Sizes of a text: ``chars``, UTF-8 ``bytes``, ``lines`` and whitespace-split ``words``."""
    lines = text.count("\n") + (1 if text and not text.endswith("\n") else 0)
    nbytes = len(text.encode("utf-8"))
    return {"chars": len(text), "bytes": nbytes, "lines": lines, "words": len(text.split())}


def mix(
    sources: dict[str, list[str]], weights: dict[str, float], total_chars: int, seed: int
) -> list[tuple[str, str]]:
    """Sample about ``total_chars`` characters of whole documents, split by ``weights``.

    ``weights`` are relative shares of characters ({"prose": 3, "code": 1} means
    75% prose); sources without a weight get none. Each source's documents are
    drawn in shuffled order; if a source runs out it is reshuffled and repeated,
    which is what "two epochs of the code data" means in a mixture recipe.
    Returns ``(source_name, document)`` pairs shuffled together; the same seed
    always gives the same list.
    """
    unknown = sorted(set(weights) - set(sources))
    if unknown:
        raise ValueError(f"weights name unknown sources {unknown}; sources are {sorted(sources)}")
    if any(w < 0 for w in weights.values()):
        raise ValueError(f"weights must be >= 0, got {weights}")
    total_weight = sum(weights.values())
    if total_weight <= 0:
        raise ValueError(f"at least one weight must be positive, got {weights}")
    if total_chars <= 0:
        raise ValueError(f"total_chars must be positive, got {total_chars}")
    rng = random.Random(seed)
    out: list[tuple[str, str]] = []
    for name in sorted(weights):
        if weights[name] == 0:
            continue
        docs = [d for d in sources[name] if d]
        if not docs:
            raise ValueError(
                f"source '{name}' has weight {weights[name]} but no non-empty documents"
            )
        target = total_chars * weights[name] / total_weight
        got, order = 0, []
        while True:
            if not order:
                order = rng.sample(docs, len(docs))  # a fresh shuffled pass (epoch)
            doc = order[-1]
            if got + len(doc) / 2 > target:  # adding it would overshoot more than we lack
                break
            out.append((name, order.pop()))
            got += len(doc)
    rng.shuffle(out)
    return out
