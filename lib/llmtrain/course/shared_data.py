"""The course data every chapter and checkpoint shares, built the same way everywhere.

The course tokenizer (``assets/tokenizer/course.tiktoken``), the tokenised
pretraining corpus of a recipe, fresh held-out biographies, the messy crawl
of chapter 05, and the reward recipe's preference pairs (sampled once, then
read from the file shipped beside the checkpoint).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
import re
from pathlib import Path

import torch

from ..align.policy_runs import rl_prompts
from ..align.preferences import PreferencePair, preference_pairs, split_by_person
from ..align.sft import abstention_examples, qa_examples
from ..core.chat import chat_prompt, encode_example
from ..core.tokenizer import Tokenizer, train_bpe
from ..data.crawl import messy_crawl
from ..data.effects import clean_heldout_texts
from ..data.filtering import run_pipeline
from ..world import corpora
from ..world.fiction import Document, course_world
from .checkpoints import load, manifest
from .paths import TOKENIZER_PATH, ZOO_DIR
from .recipes import RECIPES, TOKENIZER_EXTRA, TOKENIZER_VOCAB, Recipe, stage


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


# The tokenizer is committed: restoring it from git is the fix. Retraining it changes every
# checkpoint's input, so ``zoo build --tokenizer`` retrains the whole zoo too.
TOKENIZER_FIX = ("restore it from git: `git checkout -- assets/tokenizer` (or retrain it, "
                 "which also retrains every checkpoint and takes well over an hour on a CPU: "
                 "`python -m llmtrain zoo build --tokenizer`)")


@functools.lru_cache(maxsize=1)
def course_tokenizer() -> Tokenizer:
    """The course's 2,048-token BPE tokenizer, as shipped in assets/; a missing or damaged
    file raises an error (``FileNotFoundError``, else ``ValueError``) naming it and the fix."""
    sidecar = TOKENIZER_PATH.with_name(TOKENIZER_PATH.name + ".json")
    for path in (TOKENIZER_PATH, sidecar):
        if not path.is_file():
            raise FileNotFoundError(f"the course tokenizer file {path} is missing: "
                                    f"{TOKENIZER_FIX}")
    try:
        return Tokenizer.load(TOKENIZER_PATH)
    except (OSError, ValueError) as e:
        # core's message names the bad file; its advice is for a tokenizer of your own,
        # so it is replaced by the course's fix
        reason = re.split(r"[:;] (?:the file was cut short or edited: )?restore ", str(e))[0]
        raise ValueError(f"the course tokenizer is damaged or was edited: {reason}; "
                         f"{TOKENIZER_FIX}") from None


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
    return messy_crawl(course_world(), **kwargs)


@functools.lru_cache(maxsize=4)
def _crawl_texts(crawl_args: str, filtered: bool) -> tuple[str, ...]:

    crawl = course_crawl(**json.loads(crawl_args))
    return tuple(run_pipeline(crawl).texts if filtered else crawl.texts)


def heldout_tokens(n_bios: int = 200) -> torch.Tensor:
    """Fresh biographies of known people, never in any training set."""
    return encode_documents(course_tokenizer(), course_world().heldout_documents(n_bios))


def fingerprint(tokens: torch.Tensor) -> str:
    return hashlib.sha256(tokens.numpy().tobytes()).hexdigest()[:16]


def sft_data(recipe: Recipe) -> tuple[list, torch.Tensor]:
    """The instruction examples of an "sft" recipe and the parent's pretraining tokens."""
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


    path = _pairs_path(name)
    if not path.exists():
        return None
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            data = json.load(f)
        if not isinstance(data, dict) or not {"pairs_args", "train", "test"} <= data.keys():
            raise ValueError("it lacks pairs_args, train or test")
    except (OSError, EOFError, ValueError) as e:         # a cut-short gzip is an EOFError
        raise ValueError(f"{path} is damaged ({e}): restore it from git: `git checkout -- "
                         f"assets/zoo/{path.name}` (or delete it: the pairs are then sampled "
                         "again from the sft checkpoint, which takes about half a minute)"
                         ) from None
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

        examples, pretrain = sft_data(recipe)
        ids = [i for e in examples for i in encode_example(tok, e.question, e.answer)[0]]
        return torch.cat([torch.tensor(ids, dtype=torch.long), pretrain])
    if stage(recipe) == "reward":
        # The questions of the training pairs, in order. The answers are sampled from
        # the sft model, and a sample can flip where two tokens' probabilities differ
        # in the last bits (another CPU, thread count or BLAS), so they are left out.

        train, _ = preference_data(recipe.name)
        return encode_documents(tok, [chat_prompt(p.prompt) for p in train])
    if stage(recipe) == "ppo" or recipe.extra.get("pairs") == "online":
        # the prompts; the responses are the policy's own samples

        return encode_documents(tok, [chat_prompt(e.question) for e in rl_prompts(
            course_world())])
    if stage(recipe) == "dpo":
        return training_tokens(RECIPES[recipe.extra["pairs"]])
    return encode_documents(tok, corpus_documents(recipe.corpus))


@functools.lru_cache(maxsize=1)
def clean_heldout_tokens() -> torch.Tensor:
    """Clean pages (world, prose, code) from a crawl no checkpoint was trained on."""
    return encode_documents(course_tokenizer(), clean_heldout_texts(course_world()))
