"""Where the course's files live, and the file helpers every writer uses.

``ASSETS`` can be moved with the ``LLMTRAIN_ASSETS`` environment variable
(the tests build a zoo in a temporary folder that way). ``writable_folder``
checks an output folder before anything is written to it, so that a read-only
checkout gets a sentence naming the folder instead of a traceback.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
ASSETS = Path(os.environ.get("LLMTRAIN_ASSETS", ROOT / "assets"))
ZOO_DIR = ASSETS / "zoo"
TOKENIZER_PATH = ASSETS / "tokenizer" / "course.tiktoken"
CHAPTERS_DIR = ROOT / "chapters"

# How a chapter's key numbers (chapter.record) reach the runner and the committed notebook:
RECORDS_ENV = "LLMTRAIN_RECORDS"  # the file the runner asks a chapter's kernel to append to
RECORD_KEY = "llmtrain/record"    # output metadata that holds a recorded value


def sha256_file(path: Path) -> str:
    """The sha256 of a file, read in 1 MB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_json_atomic(path: Path, obj) -> None:
    """Write JSON through a temporary file and a rename, so a crash never leaves half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(json.dumps(obj, indent=1) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class FolderNotWritable(OSError):
    """An output folder that cannot be made or written to; ``folder`` and ``reason`` say which
    and why (the command line adds what to pass instead)."""

    def __init__(self, folder: Path, reason: str):
        self.folder, self.reason = folder, reason
        super().__init__(f"cannot write to {folder} ({reason})")


def writable_folder(folder: str | os.PathLike) -> Path:
    """``folder``, created if need be, once a file could be written in it.

    Raises ``FolderNotWritable`` for any ``OSError`` on the way: no permission, a
    read-only file system, a file where the folder (or one above it) should be.
    """
    folder = Path(folder)
    for above in (folder, *folder.parents):       # the nearest part that exists
        if above.exists():
            if not above.is_dir():
                what = "it" if above == folder else str(above)
                raise FolderNotWritable(folder, f"{what} is a file, not a folder")
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-test.")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise FolderNotWritable(folder, e.strerror or str(e)) from None
    return folder
