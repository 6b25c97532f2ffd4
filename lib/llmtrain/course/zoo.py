"""Building and verifying the course checkpoints (the zoo).

Each checkpoint is a ``<name>.safetensors`` file and a ``<name>.json``
manifest in ``assets/zoo/``: the recipe it was trained from
(``course.recipes``), its model config, the metrics measured right after
training, a fingerprint of its training data and the sha256 of its weights.
``python -m llmtrain zoo build`` rebuilds them from scratch; ``verify()``
checks that the files match their manifests and that the manifests match
what the current code would build. Reading a checkpoint is
``course.checkpoints.load``; the data they share is ``course.shared_data``.

Each stage of a recipe has one builder and one measurement, found through
``BUILDERS`` and ``MEASURES`` (tables, not string comparisons).
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import save_model

from ..align import policy_runs
from ..align.constitution import Constitution, NameFamiliarity, default_principles
from ..align.ppo import PPOConfig, reward_model_scorer
from ..align.preferences import gold_scores
from ..align.reward_model import RewardModel, encode_pairs, pair_accuracy, train_reward_model
from ..align.sft import finetune, scorecard
from ..core.batches import LMBatches, evaluate_loss
from ..core.device import pick_device, set_threads
from ..core.model import GPT
from ..core.train import History, TrainConfig, Trainer
from ..data.effects import misinformation, regurgitation, share_false
from ..world.answers import says_dont_know
from ..world.facts import accuracy, probe_facts
from ..world.fiction import course_world
from ..world.judge import bayes_accuracy
from .checkpoints import load, manifest
from .paths import TOKENIZER_PATH, ZOO_DIR, sha256_file, write_json_atomic
from .recipes import RECIPES, Recipe, model_config, stage, storage_dtype
from .shared_data import (
    clean_heldout_tokens,
    corpus_documents,
    course_crawl,
    course_tokenizer,
    fingerprint,
    heldout_tokens,
    preference_data,
    save_preference_data,
    sft_data,
    training_tokens,
)


def measure_aligned(model: GPT, recipe: Recipe) -> dict:
    """Held-out loss, greedy scorecards, and sampled proxy/gold/KL on the evaluation prompts."""
    world, tok = course_world(), course_tokenizer()
    metrics = measure_assistant(model)
    m = policy_runs.measure_policy(model, load(recipe.model["parent"]), load("reward"), tok,
                                 policy_runs.eval_prompts(world), samples=2)
    for key in ("proxy", "gold", "kl", "length"):
        metrics[f"sampled_{key}"] = round(m[key], 4)
    for split, g in m["gold_by_split"].items():
        metrics[f"sampled_gold_{split}"] = round(g, 4)
    metrics["sampled_abstain_unseen"] = round(m["kinds"]["unseen"]["abstain"], 4)
    metrics["sampled_correct_heldout"] = round(m["kinds"]["heldout"]["correct"], 4)
    return metrics


def measure(model: GPT, recipe: Recipe) -> dict:
    """The metrics a manifest records, by the recipe's stage (``MEASURES``); a checkpoint
    trained on the crawl records loss on clean pages, memorised canaries and learned
    falsehoods instead."""
    if "crawl" in recipe.corpus:
        return measure_crawl_model(model, recipe.corpus["crawl"])
    return MEASURES[stage(recipe)](model, recipe)


def measure_pretrained(model: GPT, recipe: Recipe) -> dict:
    """Held-out loss and fact probes (in the biographies' words and in new words)."""
    world, tok = course_world(), course_tokenizer()
    docs = corpus_documents(recipe.corpus)
    k = recipe.eval_people
    metrics = {"heldout_loss": round(evaluate_loss(model, heldout_tokens()), 4)}
    for split in ("sft", "heldout"):
        people = world.people_in(split)[:k]
        for phrasing in ("bio", "probe"):
            checks = probe_facts(model, tok, world, people, phrasing=phrasing, documents=docs)
            metrics[f"{phrasing}_completion_{split}"] = round(accuracy(checks), 4)
    return metrics


def measure_assistant(model: GPT, recipe: Recipe | None = None, n_people: int = 40) -> dict:
    """Held-out loss, and how the model answers questions about each group of people."""
    world, tok = course_world(), course_tokenizer()
    metrics = {"heldout_loss": round(evaluate_loss(model, heldout_tokens()), 4)}
    for split in ("sft", "heldout", "unseen", "strangers"):
        card = scorecard(model, tok, world, split, n_people=n_people)
        metrics[f"answered_{split}"] = round(card.answered, 4)
        if split in ("unseen", "strangers"):
            metrics[f"abstained_{split}"] = round(card.abstained, 4)
            metrics[f"invented_{split}"] = round(card.invented, 4)
        else:
            metrics[f"correct_{split}"] = round(card.correct, 4)
    return metrics


def measure_reward_model(model, recipe: Recipe | str = "reward") -> dict:
    """Pair accuracy on the test people, the label-noise ceiling, and mean reward per kind."""
    name = recipe if isinstance(recipe, str) else recipe.name
    train, test = preference_data(name)
    tok = course_tokenizer()
    return {
        "train_pairs": len(train), "test_pairs": len(test),
        "test_accuracy": round(pair_accuracy(model, encode_pairs(tok, test, 128)), 4),
        "test_ceiling": round(bayes_accuracy(*gold_scores(test)), 4),
        "train_accuracy": round(pair_accuracy(model, encode_pairs(tok, train[::4], 128)), 4),
    }


def measure_crawl_model(model: GPT, crawl_args: dict) -> dict:
    """Loss on clean held-out pages, canary regurgitation and the misinformation test."""
    tok, crawl = course_tokenizer(), course_crawl(**crawl_args)
    metrics = {"clean_heldout_loss": round(evaluate_loss(model, clean_heldout_tokens()), 4)}
    for copies, rate in regurgitation(model, tok, crawl.canaries).items():
        metrics[f"regurgitated_{copies}_copies"] = round(rate, 4)
    metrics["prefers_false_campaign"] = round(share_false(misinformation(
        model, tok, crawl.false_facts)), 4)
    metrics["prefers_false_control"] = round(share_false(misinformation(
        model, tok, crawl.control_facts)), 4)
    return metrics


MEASURES: dict[str, Callable] = {"pretrain": measure_pretrained, "sft": measure_assistant,
                                 "reward": measure_reward_model, "ppo": measure_aligned,
                                 "dpo": measure_aligned}

# --- one builder per stage: (recipe, training tokens, device, progress) -> (model, History,
# curves or None) ---------------------------------------------------------------------------
def _build_pretrain(recipe: Recipe, tokens: torch.Tensor, device: str, progress: bool):
    model = GPT(model_config(recipe, course_tokenizer()))
    cfg = TrainConfig(**recipe.train, device=device, seed=recipe.seed, progress=progress)
    batches = LMBatches(tokens, model.config.block_size, recipe.batch_size, seed=recipe.seed)
    return model, Trainer(model, batches, cfg).fit(), None


def _build_sft(recipe: Recipe, tokens: torch.Tensor, device: str, progress: bool):
    examples, pretrain = sft_data(recipe)
    model = load(recipe.model["parent"], device=device).train()
    history = finetune(model, course_tokenizer(), examples, **recipe.train,
                       pretrain_tokens=pretrain, seed=recipe.seed, device=device,
                       progress=progress)
    return model, history, None


def _build_reward(recipe: Recipe, tokens: torch.Tensor, device: str, progress: bool):
    train, _ = preference_data(recipe.name)
    model = RewardModel.from_gpt(load(recipe.model["parent"], device=device),
                                 seed=recipe.seed).train()
    history = train_reward_model(model, encode_pairs(course_tokenizer(), train, 128),
                                 seed=recipe.seed, device=device, **recipe.train)
    return model, history, None


def _build_ppo(recipe: Recipe, tokens: torch.Tensor, device: str, progress: bool):
    tok = course_tokenizer()
    model = load(recipe.model["parent"], device=device).train()
    cfg = PPOConfig(**recipe.train, seed=recipe.seed, device=device)
    reward_fn = None
    if recipe.extra.get("judge") == "constitution":  # RLAIF: rules and a model judge
        reward_fn = Constitution(default_principles(course_world()),
                                 NameFamiliarity(load("base", device=device), tok)).score
    _, ph = policy_runs.run_ppo(model, load(recipe.extra["reward"], device=device), tok,
                                course_world(), cfg, reward_fn=reward_fn)
    tokens_seen, total = [], 0
    for length in ph.length:
        total += round(length * cfg.batch_size)
        tokens_seen.append(total)
    history = History(steps=ph.step, loss=ph.policy_loss, tokens=tokens_seen)
    keys = ("proxy", "gold", "kl", "entropy", "length", "clip_fraction", "value_loss")
    curves = {"step": ph.step, **{k: [round(v, 4) for v in getattr(ph, k)] for k in keys},
              "samples": ph.samples[::4]}
    return model, history, curves


def _build_dpo(recipe: Recipe, tokens: torch.Tensor, device: str, progress: bool):
    tok = course_tokenizer()
    model = load(recipe.model["parent"], device=device).train()
    if recipe.extra["pairs"] == "online":
        scorer = reward_model_scorer(load(recipe.extra["reward"], device=device), tok)
        train = policy_runs.online_pairs(model, scorer, tok, policy_runs.rl_prompts(course_world()),
                                         samples=recipe.extra["samples"],
                                         seed=recipe.extra["sample_seed"],
                                         min_gap=recipe.extra["min_gap"])
    else:
        train, _ = preference_data(recipe.extra["pairs"])
        if recipe.extra.get("drop_abstentions"):  # the control: no pair mentions abstaining
            train = [p for p in train
                     if not (says_dont_know(p.chosen) or says_dont_know(p.rejected))]
    history = policy_runs.run_dpo(model, tok, train, seed=recipe.seed, device=device,
                                  **recipe.train)
    return model, history, None


BUILDERS: dict[str, Callable] = {"pretrain": _build_pretrain, "sft": _build_sft,
                                 "reward": _build_reward, "ppo": _build_ppo, "dpo": _build_dpo}


def build(name: str, out_dir: Path = ZOO_DIR, device: str = "auto", progress: bool = True) -> dict:
    """Train checkpoint ``name`` from its recipe and write weights and manifest."""
    recipe = RECIPES[name]
    set_threads()
    tokens = training_tokens(recipe)
    torch.manual_seed(recipe.seed)
    start = time.perf_counter()
    model, history, curves = BUILDERS[stage(recipe)](recipe, tokens, device, progress)
    seconds = time.perf_counter() - start
    model = model.cpu().eval()
    half = storage_dtype(recipe) == "float16"
    if half:  # measure the weights as they will be stored
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(p.half().float())
    metrics = {"final_train_loss": round(history.loss[-1], 4), **measure(model, recipe)}
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = out_dir / f"{name}.safetensors"
    tmp = weights.with_name(f".{weights.name}.tmp")
    save_model(model.half() if half else model, str(tmp))
    model.float()
    os.replace(tmp, weights)
    record = {
        "name": name,
        "description": recipe.description,
        "recipe": asdict(recipe),
        "config": model.config.to_dict(),
        "n_params": (model.num_params() if isinstance(model, GPT)
                     else sum(p.numel() for p in model.parameters())),
        "data": {"tokens_in_corpus": len(tokens), "fingerprint": fingerprint(tokens),
                 "tokens_trained": history.tokens[-1]},
        "tokenizer_sha256": sha256_file(TOKENIZER_PATH),
        "weights_sha256": sha256_file(weights),
        "metrics": metrics,
        "train_loss_curve": {"steps": history.steps, "loss": [round(x, 4) for x in history.loss]},
        **({"curves": curves} if curves else {}),
        "built_with": {"torch": torch.__version__, "python": platform.python_version(),
                       "device": str(pick_device(device)), "seconds": round(seconds, 1)},
    }
    write_json_atomic(out_dir / f"{name}.json", record)
    if stage(recipe) == "reward":
        save_preference_data(name, out_dir)
    return record


# verify's problem for a checkpoint whose checks against the code need the tokenizer
NOT_COMPARED = ("not compared with the code (tokenizer, model config, training data): "
                "the course tokenizer does not load")


def verify_tokenizer() -> list[str]:
    """Problems with the shipped tokenizer (an empty list means it loads)."""
    try:
        course_tokenizer()
    except (OSError, ValueError) as e:
        return [f"tokenizer: {e}"]
    return []


def verify(name: str, deep: bool = False) -> list[str]:
    """Problems found with checkpoint ``name`` (an empty list means all is well).

    Checks the weights' and tokenizer's sha256, that the recipe and model
    config equal what the code would build now, and that the training data's
    fingerprint is unchanged. ``deep`` also re-measures the metrics. A missing or
    damaged file is a problem (naming the file and the fix), never an exception, so
    every check that can run does; a tokenizer that does not load skips the checks
    that need it (``verify_tokenizer`` says why).
    """
    try:
        m = manifest(name)
    except (OSError, ValueError) as e:
        return [f"{name}: {e}"]
    problems = []
    rebuild = f"`python -m llmtrain zoo build {name}`"
    recipe = RECIPES[name]
    if m["recipe"] != json.loads(json.dumps(asdict(recipe))):
        problems.append(f"{name}: the recipe in the manifest differs from RECIPES[{name!r}]: "
                        f"undo the change to course/recipes.py, or rebuild it: {rebuild}")
    try:
        tok, tokenizer_sha256 = course_tokenizer(), sha256_file(TOKENIZER_PATH)
    except (OSError, ValueError):
        tok = None
        problems.append(f"{name}: {NOT_COMPARED}")
    if tok is not None:
        problems += _verify_against_code(name, m, tok, tokenizer_sha256)
    try:
        model = load(name)
    except (OSError, ValueError, RuntimeError) as e:
        return problems + [f"{name}: {e}"]
    if deep and tok is not None:
        try:
            now = measure(model, recipe)
        except (OSError, ValueError) as e:
            return problems + [f"{name}: its metrics were not measured again: {e}"]
        for key, value in now.items():
            if abs(value - m["metrics"][key]) > 1e-3:
                problems.append(f"{name}: {key} is {value} now, {m['metrics'][key]} in manifest")
    return problems


def _verify_against_code(name: str, m: dict, tok, tokenizer_sha256: str) -> list[str]:
    """The manifest's tokenizer, model config and data fingerprint against the code's now."""
    problems = []
    rebuild = f"`python -m llmtrain zoo build {name}`"
    recipe = RECIPES[name]
    if m["tokenizer_sha256"] != tokenizer_sha256:
        problems.append(f"{name}: built with a different tokenizer than {TOKENIZER_PATH}: if "
                        "the tokenizer was changed, restore it from git (`git checkout -- "
                        f"assets/tokenizer`); else rebuild the checkpoint: {rebuild}")
    if m["config"] != model_config(recipe, tok).to_dict():
        problems.append(f"{name}: the model config differs from what the recipe gives now: "
                        f"undo the change to the code, or rebuild it: {rebuild}")
    # The crawl holds Python's own docs and sources, which change between Python
    # releases: its fingerprint is only comparable on the Python it was built with.
    if "crawl" in recipe.corpus and not same_python(m):
        return problems
    try:
        now = fingerprint(training_tokens(recipe))
    except (OSError, ValueError, RuntimeError) as e:   # e.g. the sft checkpoint the pairs need
        return problems + [f"{name}: its training data was not checked: {e}"]
    if now != m["data"]["fingerprint"]:
        problems.append(f"{name}: the training data the code makes now differs from the data "
                        "the checkpoint was trained on (world, corpus or tokenizer changed): "
                        f"undo the change, or rebuild it ({rebuild}) and every checkpoint "
                        "built from it")
    return problems


def same_python(m: dict) -> bool:
    """Whether this is the Python version a manifest's checkpoint was built with."""
    return m["built_with"]["python"] == platform.python_version()


