"""The course checkpoints: the models chapters start from, so no chapter waits for pretraining.

Each checkpoint is a ``<name>.safetensors`` file and a ``<name>.json``
manifest in ``assets/zoo/``: the recipe it was trained from, its model config,
the metrics measured right after training, a fingerprint of its training data
and the sha256 of its weights. ``python -m llmtrain zoo build`` rebuilds them
from scratch; ``verify()`` checks that the files match their manifests and
that the manifests match what the current code would build.

Shared course data lives here too: the course world, its tokenizer
(``assets/tokenizer/course.tiktoken``) and the tokenised pretraining corpus.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from . import corpora
from .data import LMBatches, evaluate_loss
from .device import pick_device, set_threads
from .facts import accuracy, probe_facts
from .model import GPT, GPTConfig, preset
from .tokenizer import Tokenizer, train_bpe
from .train import TrainConfig, Trainer
from .world import Document, World

ROOT = Path(__file__).resolve().parents[2]
ASSETS = Path(os.environ.get("LLMTRAIN_ASSETS", ROOT / "assets"))
ZOO_DIR = ASSETS / "zoo"
TOKENIZER_PATH = ASSETS / "tokenizer" / "course.tiktoken"

WORLD_ARGS = dict(seed=0, n_people=400, n_unseen=100)  # the one world of the course
TOKENIZER_VOCAB = 2048
TOKENIZER_EXTRA = dict(prose_chars=200_000, code_chars=100_000)  # so mixed corpora tokenise well


@dataclass(frozen=True)
class Recipe:
    """Everything that determines a checkpoint."""

    name: str
    description: str
    corpus: dict  # arguments of World.pretraining_documents, or {"fixed": True}
    model: dict  # preset name and overrides
    train: dict  # TrainConfig arguments
    batch_size: int = 32
    seed: int = 0
    eval_people: int = 100  # people per split in the fact probes recorded in the manifest
    extra: dict = field(default_factory=dict)


# SFT data holds this many "I don't know." answers about strangers whose names sound like
# the unseen people's (sft.abstention_examples): the form of an honest answer, which
# chapter 08's reinforcement learning then makes reliable.
SFT_ABSTAIN = 60

RECIPES: dict[str, Recipe] = {
    "base": Recipe(
        name="base",
        description="tiny GPT (4 x 128) pretrained on the course world: 5 paraphrased bios "
                    "per person, encyclopedia pages, FAQ pages and stories; ~4.9M tokens",
        corpus=dict(bios_per_person=5, n_faq=200, n_stories=200, seed=0),
        model=dict(preset="tiny", block_size=128),
        train=dict(max_steps=1200, lr=2e-3, warmup_frac=0.05, min_lr_ratio=0.1,
                   weight_decay=0.1),
    ),
    # Chapter 06: the same model and budget as "base", pretrained on one fixed
    # biography per person (same sentences, same order, every time): it recites
    # its biographies but, unlike "base", does not let SFT extract the facts.
    "base-fixed": Recipe(
        name="base-fixed",
        description="tiny GPT (4 x 128) pretrained on one fixed biography per person, the "
                    "same budget as base (~4.9M tokens): memorises without knowing",
        corpus=dict(fixed=True),
        model=dict(preset="tiny", block_size=128),
        train=dict(max_steps=1200, lr=2e-3, warmup_frac=0.05, min_lr_ratio=0.1,
                   weight_decay=0.1),
    ),
    # Chapter 05: one model, one token budget (about two passes over the raw crawl),
    # two datasets: the messy crawl as crawled, and the same crawl after the course's
    # filtering pipeline with its default settings.
    **{f"crawl-{kind}": Recipe(
        name=f"crawl-{kind}",
        description=f"tiny GPT (4 x 128) trained on the {kind} messy crawl of chapter 05 "
                    "(6,000 pages plus canaries); ~3.1M tokens",
        corpus=dict(crawl=dict(n_pages=6000, seed=0), filtered=kind == "filtered"),
        model=dict(preset="tiny", block_size=128),
        train=dict(max_steps=750, lr=2e-3, warmup_frac=0.05, min_lr_ratio=0.1,
                   weight_decay=0.1),
    ) for kind in ("raw", "filtered")},
    # Chapter 06: supervised fine-tuning on the "sft" people's questions. "sft" is the
    # course's assistant (later chapters start from it); "sft-nomix" leaves out the
    # pretraining text mixed into every batch; "sft-fixed" fine-tunes the model that
    # memorised one fixed biography per person. Same data, steps and learning rate.
    **{name: Recipe(
        name=name,
        description=f"{parent} fine-tuned on 1,000 questions about the 'sft' people and "
                    f"{SFT_ABSTAIN} 'I don't know' answers about strangers "
                    f"({'without' if windows == 0 else 'with 16 windows of'} pretraining "
                    "text per step)",
        corpus=dict(qa=dict(splits=["sft"], seed=0, style="sentence", abstain=SFT_ABSTAIN),
                    parent_corpus=True),
        model=dict(parent=parent),
        train=dict(steps=150, batch_size=64, lr=5e-4, pretrain_windows=windows,
                   block_size=48),
        # the two variants are only ever evaluated: stored in float16 (half the bytes)
        extra=dict(stage="sft", **({} if name == "sft" else {"dtype": "float16"})),
    ) for name, parent, windows in (("sft", "base", 16), ("sft-nomix", "base", 0),
                                    ("sft-fixed", "base-fixed", 16))},
    # Chapter 07: a Bradley-Terry reward model started from "sft", trained on the
    # preference pairs about 80% of the people; the other 20% are its test set.
    "reward": Recipe(
        name="reward",
        description="reward model (sft backbone + scalar head) trained on ~12,000 labelled "
                    "pairs of sft answers and controlled variants",
        corpus=dict(pairs=dict(splits=["sft", "heldout", "unseen"], samples_per_question=4,
                               pairs_per_question=6, seed=0, test_share=0.2)),
        model=dict(parent="sft"),
        train=dict(steps=1200, batch_size=32, lr=1e-3),
        extra=dict(stage="reward"),
    ),
    # Chapter 08: PPO from "sft" against the reward model (its critic starts from the
    # reward model), on questions about the reward model's training people. "ppo" pays a
    # KL penalty; "ppo-nokl" is the same run without it, longer: it shows reward hacking;
    # "ppo-rlaif" is "ppo" with a written constitution as the judge instead of the
    # reward model (RLAIF).
    **{name: Recipe(
        name=name,
        description=description,
        corpus=dict(prompts="rl_prompts"),
        model=dict(parent="sft"),
        train=dict(steps=steps, batch_size=64, kl_coef=kl, lr=2e-5, critic_warmup=5),
        extra=dict(stage="ppo", reward="reward", dtype="float16", **judge),
    ) for name, description, steps, kl, judge in (
        ("ppo", "sft after 40 PPO steps against the reward model, KL penalty beta = 0.2",
         40, 0.2, {}),
        ("ppo-nokl", "sft after 60 PPO steps against the reward model without a KL "
         "penalty (beta = 0): reward hacking", 60, 0.0, {}),
        ("ppo-rlaif", "sft after 40 PPO steps with a written constitution as the judge "
         "(RLAIF), KL penalty beta = 0.2", 40, 0.2, {"judge": "constitution"}))},
    # Chapter 09: DPO from "sft" on the reward model's training pairs, no reward model;
    # "dpo-online" is DPO on the sft model's own answers to PPO's questions, 4 per
    # question, the reward model's favourite against its least favourite (on-policy pairs).
    "dpo": Recipe(
        name="dpo",
        description="sft after 200 DPO steps (beta = 0.1) on the reward model's training pairs",
        corpus=dict(pairs="reward"),
        model=dict(parent="sft"),
        train=dict(steps=200, beta=0.1, lr=2e-5, batch_size=32),
        extra=dict(stage="dpo", pairs="reward", dtype="float16"),
    ),
    "dpo-online": Recipe(
        name="dpo-online",
        description="sft after 100 DPO steps (beta = 0.1) on pairs of its own sampled answers "
                    "ordered by the reward model (on-policy DPO)",
        corpus=dict(prompts="rl_prompts"),
        model=dict(parent="sft"),
        train=dict(steps=100, beta=0.1, lr=2e-5, batch_size=32),
        extra=dict(stage="dpo", pairs="online", reward="reward", samples=4, sample_seed=5,
                   min_gap=0.5, dtype="float16"),
    ),
}


# --- the shared course data ---------------------------------------------------
@functools.lru_cache(maxsize=4)
def course_world(**overrides) -> World:
    """The course world (the same for every student)."""
    return World.generate(**{**WORLD_ARGS, **overrides})


def tokenizer_training_text() -> list[str]:
    world = course_world()
    docs = [d.text for d in world.pretraining_documents()]
    docs.append(corpora.python_prose(TOKENIZER_EXTRA["prose_chars"]))
    docs.append(corpora.python_code(TOKENIZER_EXTRA["code_chars"]))
    return docs


def build_tokenizer(path: Path = TOKENIZER_PATH) -> Tokenizer:
    tok = train_bpe(tokenizer_training_text(), TOKENIZER_VOCAB, name="course")
    tok.save(path)
    return tok


@functools.lru_cache(maxsize=1)
def course_tokenizer() -> Tokenizer:
    """The course's 2,048-token BPE tokenizer, as shipped in assets/."""
    if not TOKENIZER_PATH.exists():
        raise FileNotFoundError(
            f"the course tokenizer is missing ({TOKENIZER_PATH}): run "
            "`python -m llmtrain zoo build` or restore assets/ from git")
    return Tokenizer.load(TOKENIZER_PATH)


def encode_documents(tokenizer: Tokenizer, docs: list[Document] | list[str]) -> torch.Tensor:
    """One token stream: each document followed by <|endoftext|>."""
    texts = [d.text if isinstance(d, Document) else d for d in docs]
    ids: list[int] = []
    for row in tokenizer.encode_batch(texts, allow_special=False):
        ids.extend(row)
        ids.append(tokenizer.eot_id)
    return torch.tensor(ids, dtype=torch.long)


def corpus_documents(corpus: dict) -> list[Document] | list[str]:
    """The training documents a recipe's ``corpus`` describes.

    ``{"crawl": {...}, "filtered": bool}`` is the messy web crawl of chapter 05,
    raw or after the course's filtering pipeline; ``{"fixed": True}`` one fixed
    biography per person; anything else the arguments of
    ``World.pretraining_documents``.
    """
    world = course_world()
    if "crawl" in corpus:
        return list(_crawl_texts(json.dumps(corpus["crawl"], sort_keys=True),
                                 bool(corpus.get("filtered"))))
    if corpus.get("fixed"):
        return world.fixed_biographies()
    return world.pretraining_documents(**corpus)


@functools.lru_cache(maxsize=4)
def course_crawl(**kwargs):
    """The messy crawl of chapter 05 (cached: the same arguments give the same crawl)."""
    from .crawl import messy_crawl

    return messy_crawl(course_world(), **kwargs)


@functools.lru_cache(maxsize=4)
def _crawl_texts(crawl_args: str, filtered: bool) -> tuple[str, ...]:
    from .filtering import run_pipeline

    crawl = course_crawl(**json.loads(crawl_args))
    return tuple(run_pipeline(crawl).texts if filtered else crawl.texts)


def heldout_tokens(n_bios: int = 200) -> torch.Tensor:
    """Fresh biographies of known people, never in any training set."""
    return encode_documents(course_tokenizer(), course_world().heldout_documents(n_bios))


def fingerprint(tokens: torch.Tensor) -> str:
    return hashlib.sha256(tokens.numpy().tobytes()).hexdigest()[:16]


# --- building, loading, verifying ---------------------------------------------
def stage(recipe: Recipe) -> str:
    """"pretrain" (from scratch on a corpus), "sft" or "reward" (from a parent checkpoint)."""
    return recipe.extra.get("stage", "pretrain")


def storage_dtype(recipe: Recipe) -> str:
    """How a checkpoint's weights are stored: "float32", or "float16" for checkpoints that
    are only evaluated, never trained further (half the bytes; loaded back as float32)."""
    return recipe.extra.get("dtype", "float32")


def model_config(recipe: Recipe, tokenizer: Tokenizer) -> GPTConfig:
    m = dict(recipe.model)
    if "parent" in m:
        return model_config(RECIPES[m["parent"]], tokenizer)
    return preset(m.pop("preset"), vocab_size=tokenizer.vocab_size, **m)


def sft_data(recipe: Recipe) -> tuple[list, torch.Tensor]:
    """The instruction examples of an "sft" recipe and the parent's pretraining tokens."""
    from .sft import abstention_examples, qa_examples

    qa = recipe.corpus["qa"]
    examples = qa_examples(course_world(), tuple(qa["splits"]), seed=qa["seed"],
                           style=qa["style"])
    if qa.get("abstain"):  # a few "I don't know." answers about strangers with odd names
        examples += abstention_examples(course_world(), qa["abstain"], seed=qa["seed"],
                                        unfamiliar_names=True)
    parent = RECIPES[recipe.model["parent"]]
    return examples, encode_documents(course_tokenizer(), corpus_documents(parent.corpus))


@functools.lru_cache(maxsize=2)
def _preference_split(pairs_args: str):
    from .reward import preference_pairs, split_by_person

    args = json.loads(pairs_args)
    test_share = args.pop("test_share")
    pairs = preference_pairs(load("sft"), course_tokenizer(), course_world(), **args)
    return split_by_person(pairs, test_share=test_share, seed=args["seed"])


def _pairs_path(name: str, out_dir: Path | None = None) -> Path:
    return (out_dir or ZOO_DIR) / f"{name}.pairs.json.gz"


@functools.lru_cache(maxsize=2)
def _stored_pairs(name: str, pairs_args: str):
    """The pairs written by ``save_preference_data``, or None if absent, made with other
    arguments, or sampled from an sft checkpoint other than the shipped one."""
    import gzip

    from .reward import PreferencePair

    path = _pairs_path(name)
    if not path.exists():
        return None
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path} is damaged ({e}); delete it (the pairs are then sampled "
                         "again) or rebuild it: python -m llmtrain zoo build reward") from None
    if (json.dumps(data["pairs_args"], sort_keys=True) != pairs_args
            or data.get("sft_weights_sha256") != manifest("sft")["weights_sha256"]):
        return None      # sampled with other arguments or from another sft model
    world = course_world()

    def pair(row):
        prompt, chosen, rejected, margin, person, attribute = row
        return PreferencePair(prompt, chosen, rejected, margin,
                              world.person(person) if person else None, attribute)

    return [pair(r) for r in data["train"]], [pair(r) for r in data["test"]]


def save_preference_data(name: str = "reward", out_dir: Path | None = None) -> Path:
    """Write a reward recipe's (train, test) pairs next to its checkpoint.

    Sampling them from the sft model takes about half a minute on a CPU; chapters
    and tests then read the file instead. The file names the recipe's pair
    arguments and the sft weights' sha256, and is ignored when either differs.
    """
    import gzip

    recipe = RECIPES[name]
    args = recipe.corpus["pairs"]
    train, test = _preference_split(json.dumps(args, sort_keys=True))

    def row(p):
        return [p.prompt, p.chosen, p.rejected, p.margin_gold,
                p.person.name if p.person else None, p.attribute]

    path = _pairs_path(name, out_dir)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
        f.write(json.dumps({"pairs_args": args,
                            "sft_weights_sha256": manifest("sft")["weights_sha256"],
                            "train": [row(p) for p in train],
                            "test": [row(p) for p in test]}).encode("utf-8"))
    os.replace(tmp, path)
    _stored_pairs.cache_clear()
    return path


def preference_data(name: str = "reward"):
    """(train, test) preference pairs of a "reward" recipe.

    The pairs are judged samples of the shipped "sft" model plus controlled
    variants (``reward.preference_pairs``), split by person. They ship next to
    the checkpoint (``save_preference_data``, written by ``build``); without
    that file they are sampled again, once per session.
    """
    recipe = RECIPES[name]
    if stage(recipe) != "reward":
        raise ValueError(f"{name!r} is not a reward-model recipe")
    args = json.dumps(recipe.corpus["pairs"], sort_keys=True)
    stored = _stored_pairs(name, args)
    return stored if stored is not None else _preference_split(args)


def training_tokens(recipe: Recipe) -> torch.Tensor:
    """Every token a recipe trains on, in one tensor: what its data fingerprint hashes."""
    tok = course_tokenizer()
    if stage(recipe) == "sft":
        from .sft import encode_example

        examples, pretrain = sft_data(recipe)
        ids = [i for e in examples for i in encode_example(tok, e.question, e.answer)[0]]
        return torch.cat([torch.tensor(ids, dtype=torch.long), pretrain])
    if stage(recipe) == "reward":
        # The questions of the training pairs, in order. The answers are sampled from
        # the sft model, and a sample can flip where two tokens' probabilities differ
        # in the last bits (another CPU, thread count or BLAS), so they are left out.
        from .sft import chat_prompt

        train, _ = preference_data(recipe.name)
        return encode_documents(tok, [chat_prompt(p.prompt) for p in train])
    if stage(recipe) == "ppo" or recipe.extra.get("pairs") == "online":
        # the prompts; the responses are the policy's own samples
        from .alignment import rl_prompts
        from .sft import chat_prompt

        return encode_documents(tok, [chat_prompt(e.question) for e in rl_prompts(
            course_world())])
    if stage(recipe) == "dpo":
        return training_tokens(RECIPES[recipe.extra["pairs"]])
    return encode_documents(tok, corpus_documents(recipe.corpus))


def _build_aligned(recipe: Recipe, device: str):
    """Train a "ppo" or "dpo" recipe from its parent; returns (model, History, curves)."""
    from . import alignment
    from .train import History

    tok = course_tokenizer()
    model = load(recipe.model["parent"], device=device).train()
    if stage(recipe) == "ppo":
        from .ppo import PPOConfig

        cfg = PPOConfig(**recipe.train, seed=recipe.seed, device=device)
        reward_fn = None
        if recipe.extra.get("judge") == "constitution":  # RLAIF: rules and a model judge
            from .constitution import Constitution, NameFamiliarity, default_principles

            reward_fn = Constitution(default_principles(course_world()),
                                     NameFamiliarity(load("base", device=device), tok)).score
        _, ph = alignment.run_ppo(model, load(recipe.extra["reward"], device=device), tok,
                                  course_world(), cfg, reward_fn=reward_fn)
        tokens, total = [], 0
        for length in ph.length:
            total += round(length * cfg.batch_size)
            tokens.append(total)
        history = History(steps=ph.step, loss=ph.policy_loss, tokens=tokens)
        keys = ("proxy", "gold", "kl", "entropy", "length", "clip_fraction", "value_loss")
        curves = {"step": ph.step, **{k: [round(v, 4) for v in getattr(ph, k)] for k in keys},
                  "samples": ph.samples[::4]}
        return model, history, curves
    if recipe.extra["pairs"] == "online":
        from .ppo import reward_model_scorer

        scorer = reward_model_scorer(load(recipe.extra["reward"], device=device), tok)
        train = alignment.online_pairs(model, scorer, tok, alignment.rl_prompts(course_world()),
                                       samples=recipe.extra["samples"],
                                       seed=recipe.extra["sample_seed"],
                                       min_gap=recipe.extra["min_gap"])
    else:
        train, _ = preference_data(recipe.extra["pairs"])
    history = alignment.run_dpo(model, tok, train, seed=recipe.seed, device=device,
                                **recipe.train)
    return model, history, None


def measure_aligned(model: GPT, recipe: Recipe) -> dict:
    """Held-out loss, greedy scorecards, and sampled proxy/gold/KL on the evaluation prompts."""
    from . import alignment

    world, tok = course_world(), course_tokenizer()
    metrics = measure_assistant(model)
    m = alignment.measure_policy(model, load(recipe.model["parent"]), load("reward"), tok,
                                 alignment.eval_prompts(world), samples=2)
    for key in ("proxy", "gold", "kl", "length"):
        metrics[f"sampled_{key}"] = round(m[key], 4)
    for split, g in m["gold_by_split"].items():
        metrics[f"sampled_gold_{split}"] = round(g, 4)
    metrics["sampled_abstain_unseen"] = round(m["kinds"]["unseen"]["abstain"], 4)
    metrics["sampled_correct_heldout"] = round(m["kinds"]["heldout"]["correct"], 4)
    return metrics


def measure(model: GPT, recipe: Recipe) -> dict:
    """The metrics a manifest records: held-out loss and fact probes (or, for the
    crawl checkpoints, loss on clean pages, memorised canaries and learned falsehoods)."""
    world, tok = course_world(), course_tokenizer()
    if "crawl" in recipe.corpus:
        return measure_crawl_model(model, recipe.corpus["crawl"])
    if stage(recipe) == "sft":
        return measure_assistant(model)
    if stage(recipe) == "reward":
        return measure_reward_model(model, recipe.name)
    if stage(recipe) in ("ppo", "dpo"):
        return measure_aligned(model, recipe)
    docs = corpus_documents(recipe.corpus)
    k = recipe.eval_people
    metrics = {"heldout_loss": round(evaluate_loss(model, heldout_tokens()), 4)}
    for split in ("sft", "heldout"):
        people = world.people_in(split)[:k]
        for phrasing in ("bio", "probe"):
            checks = probe_facts(model, tok, world, people, phrasing=phrasing, documents=docs)
            metrics[f"{phrasing}_completion_{split}"] = round(accuracy(checks), 4)
    return metrics


def measure_assistant(model: GPT, n_people: int = 40) -> dict:
    """Held-out loss, and how the model answers questions about each group of people."""
    from .sft import scorecard

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


def measure_reward_model(model, name: str = "reward") -> dict:
    """Pair accuracy on the test people, the label-noise ceiling, and mean reward per kind."""
    from .reward import bayes_accuracy, encode_pairs, gold_scores, pair_accuracy

    train, test = preference_data(name)
    tok = course_tokenizer()
    return {
        "train_pairs": len(train), "test_pairs": len(test),
        "test_accuracy": round(pair_accuracy(model, encode_pairs(tok, test, 128)), 4),
        "test_ceiling": round(bayes_accuracy(*gold_scores(test)), 4),
        "train_accuracy": round(pair_accuracy(model, encode_pairs(tok, train[::4], 128)), 4),
    }


@functools.lru_cache(maxsize=1)
def clean_heldout_tokens() -> torch.Tensor:
    """Clean pages (world, prose, code) from a crawl no checkpoint was trained on."""
    from .data_effects import clean_heldout_texts

    return encode_documents(course_tokenizer(), clean_heldout_texts(course_world()))


def measure_crawl_model(model: GPT, crawl_args: dict) -> dict:
    """Loss on clean held-out pages, canary regurgitation and the misinformation test."""
    from .data_effects import misinformation, regurgitation, share_false

    tok, crawl = course_tokenizer(), course_crawl(**crawl_args)
    metrics = {"clean_heldout_loss": round(evaluate_loss(model, clean_heldout_tokens()), 4)}
    for copies, rate in regurgitation(model, tok, crawl.canaries).items():
        metrics[f"regurgitated_{copies}_copies"] = round(rate, 4)
    metrics["prefers_false_campaign"] = round(share_false(misinformation(
        model, tok, crawl.false_facts)), 4)
    metrics["prefers_false_control"] = round(share_false(misinformation(
        model, tok, crawl.control_facts)), 4)
    return metrics


def build(name: str, out_dir: Path = ZOO_DIR, device: str = "auto", progress: bool = True) -> dict:
    """Train checkpoint ``name`` from its recipe and write weights and manifest."""
    from safetensors.torch import save_model

    recipe = RECIPES[name]
    set_threads()
    tok = course_tokenizer()
    tokens = training_tokens(recipe)
    torch.manual_seed(recipe.seed)
    start = time.perf_counter()
    if stage(recipe) == "sft":
        from .sft import finetune

        examples, pretrain = sft_data(recipe)
        model = load(recipe.model["parent"], device=device).train()
        history = finetune(model, tok, examples, **recipe.train, pretrain_tokens=pretrain,
                           seed=recipe.seed, device=device, progress=progress)
    elif stage(recipe) == "reward":
        from .reward import RewardModel, encode_pairs, train_reward_model

        train, _ = preference_data(name)
        model = RewardModel.from_gpt(load(recipe.model["parent"], device=device),
                                     seed=recipe.seed).train()
        history = train_reward_model(model, encode_pairs(tok, train, 128),
                                     seed=recipe.seed, device=device, **recipe.train)
    elif stage(recipe) in ("ppo", "dpo"):
        model, history, curves = _build_aligned(recipe, device)
    else:
        model = GPT(model_config(recipe, tok))
        cfg = TrainConfig(**recipe.train, device=device, seed=recipe.seed, progress=progress)
        batches = LMBatches(tokens, model.config.block_size, recipe.batch_size,
                            seed=recipe.seed)
        history = Trainer(model, batches, cfg).fit()
    if stage(recipe) not in ("ppo", "dpo"):
        curves = None
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
    manifest = {
        "name": name,
        "description": recipe.description,
        "recipe": asdict(recipe),
        "config": model.config.to_dict(),
        "n_params": (model.num_params() if isinstance(model, GPT)
                     else sum(p.numel() for p in model.parameters())),
        "data": {"tokens_in_corpus": len(tokens), "fingerprint": fingerprint(tokens),
                 "tokens_trained": history.tokens[-1]},
        "tokenizer_sha256": _sha256(TOKENIZER_PATH),
        "weights_sha256": _sha256(weights),
        "metrics": metrics,
        "train_loss_curve": {"steps": history.steps, "loss": [round(x, 4) for x in history.loss]},
        **({"curves": curves} if curves else {}),
        "built_with": {"torch": torch.__version__, "python": platform.python_version(),
                       "device": str(pick_device(device)), "seconds": round(seconds, 1)},
    }
    _write_json(out_dir / f"{name}.json", manifest)
    if stage(recipe) == "reward":
        save_preference_data(name, out_dir)
    return manifest


def remeasure(name: str) -> dict:
    """Re-measure a shipped checkpoint's metrics with the current code; update its manifest."""
    m = manifest(name)
    m["metrics"] = {"final_train_loss": m["metrics"]["final_train_loss"],
                    **measure(load(name), RECIPES[name])}
    _write_json(ZOO_DIR / f"{name}.json", m)
    return m["metrics"]


def manifest(name: str) -> dict:
    path = ZOO_DIR / f"{name}.json"
    if name not in RECIPES:
        raise ValueError(f"unknown checkpoint {name!r}; the zoo has {sorted(RECIPES)}")
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `python -m llmtrain zoo build {name}`")
    return json.loads(path.read_text())


def load(name: str = "base", device: str = "cpu") -> GPT:
    """A shipped checkpoint as a GPT in eval mode, checked against its manifest."""
    from safetensors.torch import load_model

    m = manifest(name)
    weights = ZOO_DIR / f"{name}.safetensors"
    if not weights.exists():
        raise FileNotFoundError(f"{weights} is missing: run `python -m llmtrain zoo build {name}`")
    if _sha256(weights) != m["weights_sha256"]:
        raise ValueError(f"{weights} does not match its manifest (sha256 differs): the file is "
                         f"corrupt or was changed; restore it from git or rebuild it")
    model = GPT(GPTConfig.from_dict(m["config"]))
    if stage(RECIPES[name]) == "reward":
        from .reward import RewardModel

        model = RewardModel(model)
    load_model(model, str(weights), strict=True)
    return model.to(pick_device(device)).eval()


def verify(name: str, deep: bool = False) -> list[str]:
    """Problems found with checkpoint ``name`` (an empty list means all is well).

    Checks the weights' and tokenizer's sha256, that the recipe and model
    config equal what the code would build now, and that the training data's
    fingerprint is unchanged. ``deep`` also re-measures the metrics.
    """
    problems = []
    m = manifest(name)
    recipe = RECIPES[name]
    if m["recipe"] != json.loads(json.dumps(asdict(recipe))):
        problems.append(f"{name}: the recipe in the manifest differs from RECIPES[{name!r}]")
    if m["tokenizer_sha256"] != _sha256(TOKENIZER_PATH):
        problems.append(f"{name}: built with a different tokenizer than the shipped one")
    tok = course_tokenizer()
    if m["config"] != model_config(recipe, tok).to_dict():
        problems.append(f"{name}: the model config differs from what the recipe gives now")
    # The crawl holds Python's own docs and sources, which change between Python
    # releases: its fingerprint is only comparable on the Python it was built with.
    comparable = "crawl" not in recipe.corpus or same_python(m)
    if comparable and fingerprint(training_tokens(recipe)) != m["data"]["fingerprint"]:
        problems.append(f"{name}: the training data the code makes now differs from the data "
                        "the checkpoint was trained on (world, corpus or tokenizer changed): "
                        "rebuild the zoo")
    try:
        model = load(name)
    except (ValueError, RuntimeError) as e:
        return problems + [str(e)]
    if deep:
        now = measure(model, recipe)
        for key, value in now.items():
            if abs(value - m["metrics"][key]) > 1e-3:
                problems.append(f"{name}: {key} is {value} now, {m['metrics'][key]} in manifest")
    return problems


def same_python(m: dict) -> bool:
    """Whether this is the Python version a manifest's checkpoint was built with."""
    return m["built_with"]["python"] == platform.python_version()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n")
    os.replace(tmp, path)
