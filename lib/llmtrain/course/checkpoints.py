"""Reading the shipped checkpoints: a manifest, and the weights checked against it.

Each checkpoint is a ``<name>.safetensors`` file and a ``<name>.json``
manifest in ``assets/zoo/``. ``load`` refuses weights whose sha256 differs
from the manifest's, and every error names the file and the fix: the zoo is
committed, so a missing or damaged file is restored from git first; rebuilding
retrains the checkpoint, which takes many minutes and its parent checkpoints.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_model

from ..align.reward_model import RewardModel
from ..core.device import pick_device
from ..core.model import GPT, GPTConfig
from .paths import ZOO_DIR, sha256_file
from .recipes import RECIPES, stage

# What every manifest written by ``zoo.build`` holds, and the readers use.
MANIFEST_KEYS = ("name", "recipe", "config", "data", "tokenizer_sha256", "weights_sha256",
                 "metrics", "built_with")


def how_to_fix(name: str, path: Path) -> str:
    """The fix for a missing or damaged file of checkpoint ``name``: restore it from git,
    or else rebuild the checkpoint (slow, and it needs the checkpoints it starts from)."""
    recipe = RECIPES[name]
    needs = sorted({n for n in (recipe.model.get("parent"), recipe.extra.get("reward")) if n})
    after = f" and needs {' and '.join(needs)}" if needs else ""
    return (f"restore it from git: `git checkout -- assets/zoo/{path.name}` (or rebuild it, "
            f"which retrains the checkpoint, takes many minutes{after}: "
            f"`python -m llmtrain zoo build {name}`)")


def manifest(name: str) -> dict:
    """The manifest of checkpoint ``name``; a missing, unreadable or damaged one raises an
    error (``FileNotFoundError``, else ``ValueError``) naming the file and the fix."""
    if name not in RECIPES:
        raise ValueError(f"unknown checkpoint {name!r}; the zoo has {sorted(RECIPES)}")
    path = ZOO_DIR / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: {how_to_fix(name, path)}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
        raise ValueError(f"{path} cannot be read ({reason}): {how_to_fix(name, path)}") from None
    try:
        m = json.loads(text)
    except ValueError as e:
        raise ValueError(f"{path} is not valid JSON ({e}; cut short or edited?): "
                         f"{how_to_fix(name, path)}") from None
    lacking = ([k for k in MANIFEST_KEYS if k not in m] if isinstance(m, dict)
               else list(MANIFEST_KEYS))
    if lacking or m["name"] != name:
        what = (f"it lacks {', '.join(lacking)}" if lacking
                else f"it is the manifest of {m['name']!r}")
        raise ValueError(f"{path} is not a checkpoint manifest of {name!r} ({what}): "
                         f"{how_to_fix(name, path)}")
    return m


def load(name: str = "base", device: str = "cpu") -> GPT:
    """A shipped checkpoint as a GPT in eval mode, checked against its manifest."""

    m = manifest(name)
    weights = ZOO_DIR / f"{name}.safetensors"
    if not weights.exists():
        raise FileNotFoundError(f"{weights} is missing: {how_to_fix(name, weights)}")
    try:
        digest = sha256_file(weights)
    except OSError as e:
        raise ValueError(f"{weights} cannot be read ({e.strerror}): "
                         f"{how_to_fix(name, weights)}") from None
    if digest != m["weights_sha256"]:
        raise ValueError(f"{weights} does not match its manifest (sha256 differs): the file is "
                         f"corrupt or was changed; {how_to_fix(name, weights)}")
    model = GPT(GPTConfig.from_dict(m["config"]))
    if stage(RECIPES[name]) == "reward":

        model = RewardModel(model)
    load_model(model, str(weights), strict=True)
    return model.to(pick_device(device)).eval()
