"""Reading the shipped checkpoints: a manifest, and the weights checked against it.

Each checkpoint is a ``<name>.safetensors`` file and a ``<name>.json``
manifest in ``assets/zoo/``. ``load`` refuses weights whose sha256 differs
from the manifest's, and every error names the file and the fix.
"""

from __future__ import annotations

import json

from safetensors.torch import load_model

from ..align.reward_model import RewardModel
from ..core.device import pick_device
from ..core.model import GPT, GPTConfig
from .paths import ZOO_DIR, sha256_file
from .recipes import RECIPES, stage


def manifest(name: str) -> dict:
    path = ZOO_DIR / f"{name}.json"
    if name not in RECIPES:
        raise ValueError(f"unknown checkpoint {name!r}; the zoo has {sorted(RECIPES)}")
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `python -m llmtrain zoo build {name}`")
    return json.loads(path.read_text())


def load(name: str = "base", device: str = "cpu") -> GPT:
    """A shipped checkpoint as a GPT in eval mode, checked against its manifest."""

    m = manifest(name)
    weights = ZOO_DIR / f"{name}.safetensors"
    if not weights.exists():
        raise FileNotFoundError(f"{weights} is missing: run `python -m llmtrain zoo build {name}`")
    if sha256_file(weights) != m["weights_sha256"]:
        raise ValueError(f"{weights} does not match its manifest (sha256 differs): the file is "
                         f"corrupt or was changed; restore it from git or rebuild it")
    model = GPT(GPTConfig.from_dict(m["config"]))
    if stage(RECIPES[name]) == "reward":

        model = RewardModel(model)
    load_model(model, str(weights), strict=True)
    return model.to(pick_device(device)).eval()
