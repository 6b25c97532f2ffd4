"""Where the course's files live, and the two file helpers every writer uses.

``ASSETS`` can be moved with the ``LLMTRAIN_ASSETS`` environment variable
(the tests build a zoo in a temporary folder that way).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
ASSETS = Path(os.environ.get("LLMTRAIN_ASSETS", ROOT / "assets"))
ZOO_DIR = ASSETS / "zoo"
TOKENIZER_PATH = ASSETS / "tokenizer" / "course.tiktoken"
CHAPTERS_DIR = ROOT / "chapters"


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
