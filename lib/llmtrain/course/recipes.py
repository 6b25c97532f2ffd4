"""The zoo's recipes: everything that determines each course checkpoint.

A ``Recipe`` names its corpus, its model (a preset, or a parent checkpoint it
starts from), its training arguments and its stage. ``python -m llmtrain zoo
build NAME`` trains it (``course.zoo``); the manifest written next to the
weights repeats the recipe, so ``zoo verify`` can tell when the code would
now build something else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.model import GPTConfig, preset
from ..core.tokenizer import Tokenizer

TOKENIZER_VOCAB = 2048
TOKENIZER_EXTRA = dict(prose_chars=200_000, code_chars=100_000)  # so mixed corpora tokenise well
STAGES = ("pretrain", "sft", "reward", "ppo", "dpo")


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
# the unseen people's (sft.abstention_examples): the form of an honest answer (chapter 08
# shows that reinforcement learning does not make it reliable here: the policy rarely samples it).
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
    # Chapter 00/08/09's control: "dpo" on the same pairs less every pair with an
    # "I don't know" answer on either side: what DPO does to abstention when its data
    # never mentions it.
    "dpo-noabstain": Recipe(
        name="dpo-noabstain",
        description="sft after 200 DPO steps (beta = 0.1) on the reward model's training "
                    "pairs without any pair holding an 'I don't know' answer (a control)",
        corpus=dict(pairs="reward"),
        model=dict(parent="sft"),
        train=dict(steps=200, beta=0.1, lr=2e-5, batch_size=32),
        extra=dict(stage="dpo", pairs="reward", drop_abstentions=True, dtype="float16"),
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
