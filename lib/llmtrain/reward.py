"""Reward models: learning a score for answers from pairwise preferences.

People find it hard to give an answer a number ("7 out of 10?") but easy to
say which of two answers is better. A reward model turns such comparisons
into a score. It is a GPT whose vocabulary projection is replaced by a
*scalar head*: one number r(prompt, response) read at the last token of the
conversation. It is trained with the Bradley-Terry model of comparisons,

    P(A preferred to B) = sigmoid(r(A) - r(B)),

by minimising ``losses.bradley_terry_loss`` on pairs (chosen, rejected).
Only differences of rewards matter: adding a constant to every reward
changes nothing.

Where the preference labels come from. The course has no human labellers,
so a *hidden judge* plays them: ``judge_score`` gives every answer a gold
score (is it correct? honest? well formed? concise?) and ``label_pair``
turns two gold scores into a noisy preference through a Bradley-Terry draw,
as a tired human would. The reward model never sees the judge, only the
labels; the gold score is what later chapters use to catch a policy that
fools the reward model. Because the labels are noisy, even a perfect model
cannot agree with all of them: ``bayes_accuracy`` is that ceiling.

A first attempt at this chapter learned almost nothing (held-out pair
accuracy 0.51-0.57): a quarter of its pairs were gold ties, whose labels are
coin flips. The judge here has continuous components (length in characters)
so ties are rare, and ``answer_variants`` builds pairs of clearly different
answers (correct, wrong, "I don't know", off-format, rambling) without
teaching any model a wrong fact.

Pipeline::

    pairs = make_pairs(examples, responses_fn)           # gold judge + noisy labels
    data = encode_pairs(tokenizer, pairs, block_size)    # right-padded token ids
    rm = RewardModel.from_gpt(sft_model)                 # copy, new scalar head
    history = train_reward_model(rm, data, steps=300)    # Bradley-Terry loss
    pair_accuracy(rm, heldout_data)                      # share ranked the right way
"""

from __future__ import annotations

import copy
import math
import random
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .generation import complete
from .losses import bradley_terry_loss
from .model import GPT
from .sft import (
    ANSWER_TEMPLATES,
    Example,
    answer_is_correct,
    answer_text,
    chat_prompt,
    encode_example,
    looks_like_answer,
    qa_examples,
    says_dont_know,
)
from .tokenizer import Tokenizer
from .train import Callback, History, TrainConfig, Trainer
from .world import ATTRIBUTES, QUESTION_TEMPLATES, Person, World, _values


# --- the model ------------------------------------------------------------------
class RewardModel(nn.Module):
    """A GPT backbone with a scalar head: (B, T) token ids -> (B,) rewards.

    The backbone's final hidden states (``GPT.hidden_states``, after the last
    LayerNorm) go through ``head = nn.Linear(n_embd, 1)``, and the reward of a
    row is the head's output at its *last real token* (for the course's chat
    template, the closing ``<|end|>``: by then the model has read the whole
    question and answer).

    Padding. This module right-pads: each row is the conversation followed by
    ``<|pad|>`` tokens, and ``last_index`` (B,) = length - 1 says where each
    conversation ends. Attention is causal, so no real token ever looks at the
    pads after it: no attention mask is needed and positions are the usual
    0, 1, 2, ... Left padding (what generation uses) also works if you pass
    ``attention_mask`` (1 = real token): positions then count real tokens
    only, and the reward is read at the last column. Given only an
    ``attention_mask``, the last 1 of each row is used, which covers both.

    The backbone's language-model output layer is kept (it is tied to the
    token embedding) but unused.
    """

    def __init__(self, backbone: GPT, init_std: float = 0.02, seed: int = 0):
        super().__init__()
        if not isinstance(backbone, GPT):
            raise TypeError(f"backbone must be a llmtrain GPT, got {type(backbone).__name__}")
        if not init_std >= 0:
            raise ValueError(f"init_std must be >= 0 (0 gives a zero head), got {init_std}")
        self.backbone = backbone
        self.head = nn.Linear(backbone.config.n_embd, 1)
        # A small head: every reward starts near 0, so the first losses are near ln 2.
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            w = torch.randn(self.head.weight.shape, generator=g) * init_std
            self.head.weight.copy_(w)
            self.head.bias.zero_()
        self.head.to(next(backbone.parameters()).device)

    @classmethod
    def from_gpt(cls, gpt: GPT, init_std: float = 0.02, seed: int = 0) -> RewardModel:
        """A reward model that starts from a *copy* of ``gpt`` (the original stays untouched).

        Reward models usually start from the SFT model: it already reads the
        chat template and knows the facts the answers are about.
        """
        return cls(copy.deepcopy(gpt), init_std=init_std, seed=seed)

    @property
    def config(self):
        """The backbone's ``GPTConfig`` (block_size, vocab_size, ...)."""
        return self.backbone.config

    def forward(
        self,
        idx: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        last_index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Rewards (B,) of the token rows ``idx`` (B, T).

        last_index: (B,) the column of each row's last real token. Without it
        it comes from ``attention_mask`` (its last 1), or is T - 1 (no padding).
        """
        if idx.ndim != 2:
            raise ValueError(f"idx must have shape (B, T), got {tuple(idx.shape)}")
        B, T = idx.shape
        if last_index is None:
            if attention_mask is None:
                last_index = torch.full((B,), T - 1, dtype=torch.long, device=idx.device)
            else:
                if attention_mask.shape != idx.shape:
                    raise ValueError(f"attention_mask {tuple(attention_mask.shape)} must have "
                                     f"the shape of idx {tuple(idx.shape)}")
                flipped = attention_mask.to(idx.device).long().flip(1)
                last_index = T - 1 - flipped.argmax(dim=1)  # column of the last 1
        last_index = torch.as_tensor(last_index, dtype=torch.long, device=idx.device)
        if last_index.shape != (B,):
            raise ValueError(f"last_index must have shape ({B},), one column per row, got "
                             f"{tuple(last_index.shape)}")
        if B and (int(last_index.min()) < 0 or int(last_index.max()) >= T):
            raise ValueError(f"last_index must be in [0, {T - 1}] (columns of idx), got range "
                             f"[{int(last_index.min())}, {int(last_index.max())}]")
        h = self.backbone.hidden_states(idx, attention_mask=attention_mask)  # (B, T, C)
        h_last = h[torch.arange(B, device=idx.device), last_index]  # (B, C)
        return self.head(h_last).squeeze(-1).float()  # (B,)


# --- the hidden judge ---------------------------------------------------------------
# The judge's gold score = a base score for the kind of answer + small style terms.
# The style terms add up to at most +0.15 and at least -0.30, less than the 0.5 between
# two kinds, so a kind never overtakes a better kind however it is phrased.
CORRECT_SCORE = 1.0  # the true value, as a whole phrase (sft.answer_is_correct)
ABSTAIN_SCORE = 0.5  # "I don't know" about a person the corpus describes
WRONG_SCORE = 0.0  # a well-formed answer with a wrong value (a confident error)
OFF_FORMAT_SCORE = -1.0  # not an answer at all (sft.looks_like_answer is False)
NAME_BONUS = 0.10  # a full sentence that names the person
TIDY_BONUS = 0.05  # starts with a capital letter and ends with a full stop
LENGTH_COST = 0.003  # per character: shorter is better; 40 characters cost 0.12
MAX_LENGTH_COST = 0.30  # reached at 100 characters
DEFAULT_TEMPERATURE = 0.2  # noise of the labeller (see label_pair)
KINDS = ("correct", "abstain", "wrong", "off_format")


def judge_category(response: str, person: Person, attribute: str) -> str:
    """The kind of answer: "correct", "abstain", "wrong" or "off_format".

    Checked in this order:
    1. "off_format" unless ``sft.looks_like_answer`` holds against every
       phrasing of the question (several lines, a new question, special
       tokens, an empty answer...);
    2. "abstain" when it says "I don't know", "I'm not sure" or "no idea";
    3. "correct" when it contains the true value (``sft.answer_is_correct``);
    4. "wrong" otherwise.
    People of the "unseen" split are described nowhere, so no model can know
    their facts: for them the honest answer is to abstain, and a definite
    answer is "wrong" even when it happens to match (a lucky guess is still
    invented).
    """
    if not isinstance(response, str):
        raise TypeError(f"response must be a string, got {type(response).__name__}")
    if attribute not in ATTRIBUTES:
        raise ValueError(f"unknown attribute {attribute!r}; known: {ATTRIBUTES}")
    questions = [q.format(n=person.name) for q in QUESTION_TEMPLATES[attribute]]
    if not all(looks_like_answer(response, q) for q in questions):
        return "off_format"
    if says_dont_know(response):
        return "abstain"
    if person.split != "unseen" and answer_is_correct(response, person, attribute):
        return "correct"
    return "wrong"


def judge_score(response: str, person: Person, attribute: str) -> float:
    """The hidden judge's gold score of ``response`` to a question about ``person``.

    base (from ``judge_category``): correct 1.0, abstain 0.5, wrong 0.0,
    off-format -1.0; for an "unseen" person abstaining earns the correct
    score, 1.0, since it is the honest answer.
    Style, added to every kind:
    * +0.10 if it names the person (a complete, polite sentence);
    * +0.05 if it starts with a capital letter and ends with a full stop;
    * -0.003 per character (stripped), at most -0.30: concise beats rambling.
    The length term makes ties rare: two answers tie only if they are of the
    same kind, the same style and exactly the same length.
    """
    kind = judge_category(response, person, attribute)
    base = {"correct": CORRECT_SCORE, "abstain": ABSTAIN_SCORE, "wrong": WRONG_SCORE,
            "off_format": OFF_FORMAT_SCORE}[kind]
    if kind == "abstain" and person.split == "unseen":
        base = CORRECT_SCORE
    text = response.strip()
    style = NAME_BONUS if person.name in text else 0.0
    if text[:1].isupper() and text.endswith("."):
        style += TIDY_BONUS
    style -= min(MAX_LENGTH_COST, LENGTH_COST * len(text))
    return base + style


_RAMBLING = (
    "I hope this helps, and do ask me if you would like to know anything else.",
    "That is what the records say, although records are sometimes incomplete.",
    "It is a question people ask quite often, so I am glad to answer it.",
)
_ABSTENTIONS = ("I don't know.", "I don't know anything about {n}.", "I'm not sure, sorry.")


def garble(text: str, rng: random.Random) -> str:
    """``text`` broken the way a drifting model breaks sentences.

    Either the start is cut off in the middle of a word ("er is Naan
    Shipping."), or one to three characters inside are deleted ("I don' know.").
    The result never still says "I don't know". Such answers teach a reward
    model that a broken answer is not a good one, whatever words it contains
    (a first reward model loved fragments like "er is Naan Shipping.").
    """
    text = text.strip()
    cuts = [k for k in range(1, len(text)) if text[k - 1].isalpha() and text[k].isalpha()
            and text[k].islower()]
    for _ in range(20):
        if cuts and rng.random() < 0.5:
            out = text[rng.choice(cuts):]
        else:
            start = rng.randrange(1, max(2, len(text) - 2))
            out = text[:start] + text[start + rng.randint(1, 3):]
        if out.strip() and out != text and not says_dont_know(out):
            return out
    return text[len(text) // 2:]


def answer_variants(example: Example, world: World, rng: random.Random) -> dict[str, str]:
    """Eight controlled answers to ``example.question``, to build preference pairs from.

    Keys: "correct" (the reference sentence), "short" (the true value alone),
    "wrong" (the reference sentence with another person's value),
    "wrong_short" (that wrong value alone), "abstain" ("I don't know."),
    "rambling" (the correct sentence plus a filler sentence), "off_format"
    (a question instead of an answer) and "garbled" (the correct sentence
    broken by ``garble``). Wrong values are real values of other
    people in ``world``, so they look plausible. ``rng`` picks the wrong value
    and the phrasings.
    """
    p, a = example.person, example.attribute
    truth = p.fact(a)
    others = sorted({o.fact(a) for o in world.people} - {truth})
    others = [v for v in others if not answer_is_correct(v, p, a)]
    if not others:
        raise ValueError(f"no other value of {a!r} in this world to make a wrong answer from: "
                         "use a world with more people")
    wrong = rng.choice(others)
    sentence = answer_text(p, a, "sentence")
    other_attribute = rng.choice([x for x in ATTRIBUTES if x != a])
    return {
        "correct": sentence,
        "short": truth,
        "wrong": ANSWER_TEMPLATES[a].format(**{**_values(p), a: wrong}),
        "wrong_short": wrong,
        "abstain": rng.choice(_ABSTENTIONS).format(n=p.name),
        "rambling": f"{sentence} {rng.choice(_RAMBLING)}",
        "off_format": rng.choice(QUESTION_TEMPLATES[other_attribute]).format(n=p.name),
        "garbled": garble(sentence, rng),
    }


# --- noisy labels -------------------------------------------------------------------
def _check_temperature(temperature: float) -> None:
    if not (isinstance(temperature, (int, float)) and temperature >= 0):
        raise ValueError(f"temperature must be a number >= 0 (0: the labeller never errs), "
                         f"got {temperature!r}")


def label_pair(score_a: float, score_b: float, rng, temperature: float = DEFAULT_TEMPERATURE
               ) -> int:
    """A noisy labeller's verdict: 1 if it prefers A, 0 if it prefers B.

    A is preferred with the Bradley-Terry probability
    sigmoid((score_a - score_b) / temperature). Low temperature: the labeller
    nearly always picks the answer with the higher gold score; high
    temperature: nearly a coin flip. Temperature 0 always picks the higher
    score (a tie is still a coin flip). ``rng`` is anything with a
    ``.random()`` method (``random.Random`` or a numpy Generator).
    """
    _check_temperature(temperature)
    diff = float(score_a) - float(score_b)
    if temperature == 0:
        p = 0.5 if diff == 0 else float(diff > 0)
    else:
        z = diff / temperature
        p = 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))
    return int(rng.random() < p)


def bayes_accuracy(scores_a: Sequence[float], scores_b: Sequence[float],
                   temperature: float = DEFAULT_TEMPERATURE) -> float:
    """The best accuracy any model can reach on labels drawn by ``label_pair``.

    For a pair whose labeller prefers A with probability p, the best guess is
    the likelier side, right with probability max(p, 1 - p); the ceiling is
    the mean of that over pairs. Equal scores give 0.5; a huge gap gives 1.
    """
    _check_temperature(temperature)
    a = torch.as_tensor(scores_a, dtype=torch.float64).reshape(-1)
    b = torch.as_tensor(scores_b, dtype=torch.float64).reshape(-1)
    if a.shape != b.shape or a.numel() == 0:
        raise ValueError(f"need two equally long, non-empty score lists, got {a.numel()} and "
                         f"{b.numel()}")
    gap = (a - b).abs()
    if temperature == 0:
        best = torch.where(gap > 0, 1.0, 0.5)
    else:
        best = torch.sigmoid(gap / temperature)  # = max(p, 1 - p)
    return float(best.mean())


# --- preference pairs -----------------------------------------------------------------
@dataclass(frozen=True)
class PreferencePair:
    """One labelled comparison: the labeller preferred ``chosen`` to ``rejected``.

    prompt: the user's question (the chat template is added when encoding).
    margin_gold: judge_score(chosen) - judge_score(rejected). It is negative
    when the noisy labeller preferred the worse answer.
    person, attribute: what the question is about (optional, for analysis).
    """

    prompt: str
    chosen: str
    rejected: str
    margin_gold: float
    person: Person | None = None
    attribute: str | None = None


def make_pairs(
    examples: Sequence[Example],
    responses_fn: Callable[[Example, random.Random], Sequence[str]],
    temperature: float = DEFAULT_TEMPERATURE,
    seed: int = 0,
    pairs_per_example: int = 1,
    different_kinds: bool = False,
) -> list[PreferencePair]:
    """Labelled preference pairs about ``examples`` (``sft.Example`` objects).

    For each example, ``pairs_per_example`` times: ``responses_fn(example, rng)``
    gives candidate answers (e.g. sampled from a model, or
    ``lambda ex, rng: list(answer_variants(ex, world, rng).values())``); two
    different ones are drawn, scored by ``judge_score`` and labelled by
    ``label_pair``. Everything is a function of ``seed``.

    ``different_kinds``: draw two answers of different ``judge_category``
    (two kinds, then one answer of each) whenever the candidates hold at
    least two kinds. Two answers of the same kind differ only in style, by a
    few hundredths of a point, so their labels are nearly coin flips that
    teach the reward model nothing; a first version of this chapter had a
    quarter of such pairs and learned almost nothing.
    """
    if pairs_per_example < 1:
        raise ValueError(f"pairs_per_example must be >= 1, got {pairs_per_example}")
    _check_temperature(temperature)
    rng = random.Random(f"pairs/{seed}")
    pairs = []
    for ex in examples:
        for _ in range(pairs_per_example):
            responses = list(dict.fromkeys(responses_fn(ex, rng)))
            if len(responses) < 2:
                raise ValueError(f"responses_fn gave {len(responses)} distinct answer(s) to "
                                 f"{ex.question!r}; a pair needs at least 2")
            kinds: dict[str, list[str]] = {}
            if different_kinds:
                for r in responses:
                    kinds.setdefault(judge_category(r, ex.person, ex.attribute), []).append(r)
            if len(kinds) >= 2:
                ka, kb = rng.sample(sorted(kinds), 2)
                a, b = rng.choice(kinds[ka]), rng.choice(kinds[kb])
            else:
                a, b = rng.sample(responses, 2)
            sa = judge_score(a, ex.person, ex.attribute)
            sb = judge_score(b, ex.person, ex.attribute)
            if label_pair(sa, sb, rng, temperature):
                pairs.append(PreferencePair(ex.question, a, b, sa - sb, ex.person, ex.attribute))
            else:
                pairs.append(PreferencePair(ex.question, b, a, sb - sa, ex.person, ex.attribute))
    return pairs


def sample_answers(model, tokenizer: Tokenizer, examples: Sequence[Example], n: int = 2,
                   temperature: float = 1.0, seed: int = 0,
                   max_new_tokens: int = 24) -> list[list[str]]:
    """``n`` sampled answers of ``model`` to each example's question (chat template)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    prompts = [chat_prompt(e.question) for e in examples]
    stop = [tokenizer.end_id, tokenizer.eot_id]
    runs = [complete(model, tokenizer, prompts, max_new_tokens, temperature=temperature,
                     stop_tokens=stop, seed=seed * 1000 + k) for k in range(n)]
    return [[run[i].strip() for run in runs] for i in range(len(examples))]


def preference_pairs(
    model,
    tokenizer: Tokenizer,
    world: World,
    splits: Sequence[str] = ("sft", "heldout", "unseen"),
    samples_per_question: int = 2,
    pairs_per_question: int = 4,
    temperature: float = DEFAULT_TEMPERATURE,
    seed: int = 0,
    people: Callable[[Person], bool] | None = None,
) -> list[PreferencePair]:
    """The course's preference data: answers of ``model`` and controlled variants, judged.

    One question per fact of every person in ``splits`` (phrasings drawn with
    ``seed``). Candidates for each question: ``samples_per_question`` answers
    sampled from ``model`` at temperature 1 (its real behaviour: mostly
    right, sometimes wrong, always confident) plus the seven
    ``answer_variants`` (wrong values, "I don't know", rambling, off-format).
    ``pairs_per_question`` pairs are drawn from them and labelled by the hidden
    judge with label noise ``temperature`` (``make_pairs``): first a *contrast*
    pair that differs in the one thing hardest to learn (right against wrong
    value; for people described nowhere, "I don't know" against an invented
    value), then a *form* pair (the reference answer, or "I don't know.",
    against the same words broken by ``garble``: a policy drifting under
    optimisation writes such text, chapter 08), then pairs of two different
    kinds of answer. ``people``: keep only
    questions about people for whom it returns True (e.g. the test people of
    ``is_test_person``).
    """
    examples = qa_examples(world, tuple(splits), seed=seed)
    if people is not None:
        examples = [e for e in examples if people(e.person)]
    if not examples:
        raise ValueError("no questions left: the splits or the people filter select nobody")
    if pairs_per_question < 1:
        raise ValueError(f"pairs_per_question must be >= 1, got {pairs_per_question}")
    samples = sample_answers(model, tokenizer, examples, samples_per_question, seed=seed)
    by_question = {id(e): s for e, s in zip(examples, samples)}

    def candidates(example: Example, rng: random.Random) -> list[str]:
        return by_question[id(example)] + list(answer_variants(example, world, rng).values())

    def contrast(example: Example, rng: random.Random) -> list[str]:
        kinds: dict[str, list[str]] = {}
        for r in dict.fromkeys(candidates(example, rng)):
            kinds.setdefault(judge_category(r, example.person, example.attribute), []).append(r)
        good = "abstain" if example.person.split == "unseen" else "correct"
        return [rng.choice(kinds[good]), rng.choice(kinds["wrong"])]

    def form(example: Example, rng: random.Random) -> list[str]:
        good = (_ABSTENTIONS[0] if example.person.split == "unseen"
                else answer_text(example.person, example.attribute))
        return [good, garble(good, rng)]

    pairs = make_pairs(examples, contrast, temperature=temperature, seed=seed)
    if pairs_per_question > 1:
        pairs += make_pairs(examples, form, temperature=temperature, seed=seed + 2)
    if pairs_per_question > 2:
        pairs += make_pairs(examples, candidates, temperature=temperature, seed=seed + 1,
                            pairs_per_example=pairs_per_question - 2, different_kinds=True)
    return pairs


def is_test_person(name: str, test_share: float = 0.2, seed: int = 0) -> bool:
    """Whether pairs about person ``name`` belong to the test side (see ``split_by_person``).

    Decided by a hash of the name alone, so the test people are the same
    whichever pairs, and however many, are made about them.
    """
    if not 0 < test_share < 1:
        raise ValueError(f"test_share must be between 0 and 1, got {test_share}")
    return zlib.crc32(f"test/{seed}/{name}".encode()) % 10_000 < test_share * 10_000


def split_by_person(pairs: Sequence[PreferencePair], test_share: float = 0.2, seed: int = 0
                    ) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """(train, test): every pair about a person goes to the same side (``is_test_person``).

    Testing on other people than the training pairs' measures whether the
    reward model learned what makes an answer good, not which answers about
    whom were preferred.
    """
    if any(p.person is None for p in pairs):
        raise ValueError("every pair needs its .person to be split by person")
    test = [p for p in pairs if is_test_person(p.person.name, test_share, seed)]
    train = [p for p in pairs if not is_test_person(p.person.name, test_share, seed)]
    return train, test


def gold_scores(pairs: Sequence[PreferencePair]) -> tuple[list[float], list[float]]:
    """The hidden judge's scores of (chosen, rejected) of every pair."""
    return ([judge_score(p.chosen, p.person, p.attribute) for p in pairs],
            [judge_score(p.rejected, p.person, p.attribute) for p in pairs])


class EncodedPairs(NamedTuple):
    """Token ids of N pairs, right-padded to a common width L.

    chosen_ids, rejected_ids: (N, L) conversations (``sft.chat_text`` of the
    prompt and the response, as token ids) followed by ``<|pad|>``.
    chosen_last, rejected_last: (N,) the column of each closing ``<|end|>``.
    """

    chosen_ids: torch.Tensor
    chosen_last: torch.Tensor
    rejected_ids: torch.Tensor
    rejected_last: torch.Tensor

    @property
    def num_pairs(self) -> int:
        return self.chosen_ids.shape[0]

    def subset(self, rows) -> EncodedPairs:
        """The pairs at ``rows`` (a slice, a list of indices or a boolean mask)."""
        if isinstance(rows, (list, tuple)):
            rows = torch.as_tensor(rows, dtype=torch.long)
        return EncodedPairs(*(t[rows] for t in self))


def encode_conversations(
    tokenizer: Tokenizer, prompts: Sequence[str], responses: Sequence[str], block_size: int,
    width: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids (N, width) of each ``chat_text(prompt, response)`` and its last column.

    ``width`` defaults to the longest conversation. Special-token text inside
    a prompt or response is encoded as plain text (see ``sft.encode_example``).
    """
    if len(prompts) != len(responses):
        raise ValueError(f"got {len(prompts)} prompts but {len(responses)} responses")
    rows = [encode_example(tokenizer, q, r)[0] for q, r in zip(prompts, responses)]
    longest = max((len(r) for r in rows), default=1)
    if longest > block_size:
        k = max(range(len(rows)), key=lambda i: len(rows[i]))
        raise ValueError(
            f"conversation {k} is {longest} tokens long, more than block_size={block_size} "
            f"({prompts[k]!r} -> {responses[k][:40]!r}): raise block_size or shorten it")
    width = longest if width is None else width
    if width < longest:
        raise ValueError(f"width={width} is shorter than the longest conversation ({longest})")
    ids = torch.full((len(rows), width), tokenizer.pad_id, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    last = torch.tensor([len(r) - 1 for r in rows], dtype=torch.long)
    return ids, last


def encode_pairs(tokenizer: Tokenizer, pairs: Sequence[PreferencePair],
                 block_size: int) -> EncodedPairs:
    """Encode preference pairs for training: see ``EncodedPairs``.

    Chosen and rejected rows share one width (the longest conversation), so a
    batch can stack them into one forward pass. Raises if a conversation is
    longer than ``block_size`` (use the reward model's ``config.block_size``).
    """
    if len(pairs) == 0:
        raise ValueError("pairs is empty: make some with make_pairs")
    prompts = [p.prompt for p in pairs]
    c_ids, c_last = encode_conversations(tokenizer, prompts, [p.chosen for p in pairs],
                                         block_size)
    r_ids, r_last = encode_conversations(tokenizer, prompts, [p.rejected for p in pairs],
                                         block_size)
    width = max(c_ids.shape[1], r_ids.shape[1])
    pad = tokenizer.pad_id
    c_ids = F.pad(c_ids, (0, width - c_ids.shape[1]), value=pad)
    r_ids = F.pad(r_ids, (0, width - r_ids.shape[1]), value=pad)
    return EncodedPairs(c_ids, c_last, r_ids, r_last)


# --- training ---------------------------------------------------------------------------
class PairBatches:
    """Minibatches of pairs for ``train.Trainer``: ``batches(i) -> (ids, last)``.

    ``ids`` (2B, L) holds the B chosen rows on top of their B rejected rows
    (one forward pass scores both), cut to the longest conversation in the
    batch; ``last`` (2B,) the column of each row's last token. Pairs are
    visited in a fresh random order every epoch; batch i is a pure function
    of (seed, i).
    """

    def __init__(self, encoded: EncodedPairs, batch_size: int, seed: int = 0):
        if not isinstance(encoded, EncodedPairs):
            raise TypeError("encoded must be the EncodedPairs that encode_pairs returns")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.encoded, self.batch_size, self.seed = encoded, batch_size, seed
        self._orders: dict[int, list[int]] = {}

    def rows(self, index: int) -> list[int]:
        """Which pairs batch ``index`` holds."""
        n = self.encoded.num_pairs
        out = []
        for s in range(index * self.batch_size, (index + 1) * self.batch_size):
            epoch = s // n
            if epoch not in self._orders:
                order = list(range(n))
                random.Random(f"pairs/{self.seed}/{epoch}").shuffle(order)
                self._orders[epoch] = order
            out.append(self._orders[epoch][s % n])
        return out

    def __call__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = torch.tensor(self.rows(index), dtype=torch.long)
        e = self.encoded
        last = torch.cat([e.chosen_last[rows], e.rejected_last[rows]])
        width = int(last.max()) + 1
        ids = torch.cat([e.chosen_ids[rows, :width], e.rejected_ids[rows, :width]])
        return ids, last


def pair_loss(model: RewardModel, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Bradley-Terry loss of a ``PairBatches`` batch: chosen rows first, rejected rows second."""
    ids, last = batch
    rewards = model(ids, last_index=last)  # (2B,)
    half = rewards.shape[0] // 2
    return bradley_terry_loss(rewards[:half], rewards[half:])


def train_reward_model(
    model: RewardModel,
    encoded: EncodedPairs,
    steps: int,
    batch_size: int = 32,
    lr: float = 3e-4,
    seed: int = 0,
    device: str = "auto",
    weight_decay: float = 0.0,
    eval_fn: Callable[[nn.Module], dict] | None = None,
    eval_every: int = 0,
    callbacks: list[Callback] | None = None,
) -> History:
    """Train ``model`` on ``encoded`` pairs with the Bradley-Terry loss; returns the History.

    This is the course's ``train.Trainer`` (AdamW, 5% warmup, cosine decay to
    10%, gradient clipping at 1) with ``PairBatches`` and ``pair_loss``: the
    same loop that pretrains, only the batches and the loss differ. The loss
    is logged at every step (``history.loss``). Runs are repeatable for a
    fixed ``seed``. ``eval_fn(model) -> dict`` is called every ``eval_every``
    steps and at the end (e.g. held-out ``pair_accuracy``).
    """
    config = TrainConfig(max_steps=steps, lr=lr, weight_decay=weight_decay, device=device,
                         seed=seed, log_every=1, eval_every=eval_every, progress=False)
    trainer = Trainer(model, PairBatches(encoded, batch_size, seed), config, loss_fn=pair_loss,
                      eval_fn=eval_fn, callbacks=callbacks)
    return trainer.fit()


@torch.no_grad()
def last_token_features(model: RewardModel, ids: torch.Tensor, last: torch.Tensor,
                        batch_size: int = 256) -> torch.Tensor:
    """The backbone's final hidden state at each row's last token: (N, n_embd), on the CPU."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    for i in range(0, ids.shape[0], batch_size):
        chunk_last = last[i : i + batch_size].to(device)
        chunk = ids[i : i + batch_size, : int(chunk_last.max()) + 1].to(device)
        h = model.backbone.hidden_states(chunk)
        out.append(h[torch.arange(chunk.shape[0], device=device), chunk_last].float().cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, model.config.n_embd)


def pair_features(model: RewardModel, encoded: EncodedPairs) -> tuple[torch.Tensor, torch.Tensor]:
    """Last-token features (N, n_embd) of the chosen and of the rejected side of every pair."""
    return (last_token_features(model, encoded.chosen_ids, encoded.chosen_last),
            last_token_features(model, encoded.rejected_ids, encoded.rejected_last))


def fit_head(chosen: torch.Tensor, rejected: torch.Tensor, steps: int = 300, lr: float = 0.05,
             weight_decay: float = 1e-3, init: torch.Tensor | None = None) -> torch.Tensor:
    """Weights w (n_embd,) of a linear reward r = w . features, fitted with the Bradley-Terry
    loss on feature pairs (full batch, Adam): logistic regression on ``chosen - rejected``.

    A bias would cancel in r(chosen) - r(rejected), so there is none.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if chosen.shape != rejected.shape or chosen.ndim != 2 or chosen.shape[0] == 0:
        raise ValueError(f"need two (N, C) feature tensors of one shape, N >= 1; got "
                         f"{tuple(chosen.shape)} and {tuple(rejected.shape)}")
    w = (torch.zeros(chosen.shape[1]) if init is None else init.detach().clone().float())
    w.requires_grad_(True)
    opt = torch.optim.Adam([w], lr=lr, weight_decay=weight_decay)
    for _ in range(steps):
        loss = bradley_terry_loss(chosen @ w, rejected @ w)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return w.detach()


def train_head_only(model: RewardModel, encoded: EncodedPairs, steps: int = 300,
                    lr: float = 0.05, weight_decay: float = 1e-3) -> float:
    """Fit only the scalar head on a frozen backbone; returns the final training loss.

    The backbone's features at the last token are computed once, so this is
    logistic regression on feature differences (``fit_head``) and takes
    seconds where training the whole reward model takes minutes: cheap
    enough to repeat for many data sizes. The backbone is not changed.
    """
    chosen, rejected = pair_features(model, encoded)
    head = model.head
    w = fit_head(chosen, rejected, steps, lr, weight_decay, init=head.weight[0].cpu())
    with torch.no_grad():
        head.weight.copy_(w[None].to(head.weight.device))
    return float(bradley_terry_loss(chosen @ w, rejected @ w))


# --- evaluation -------------------------------------------------------------------------
@torch.no_grad()
def rewards_of(model: RewardModel, ids: torch.Tensor, last: torch.Tensor,
               batch_size: int = 256) -> torch.Tensor:
    """Rewards (N,) of right-padded rows ``ids`` (N, L), in eval mode, on the CPU."""
    features = last_token_features(model, ids, last, batch_size)
    with torch.no_grad():
        return model.head(features.to(model.head.weight.device)).squeeze(-1).float().cpu()


def score_pairs(model: RewardModel, encoded: EncodedPairs,
                batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """(r_chosen, r_rejected), each (N,): the model's rewards of both sides of every pair."""
    return (rewards_of(model, encoded.chosen_ids, encoded.chosen_last, batch_size),
            rewards_of(model, encoded.rejected_ids, encoded.rejected_last, batch_size))


def pair_accuracy(model: RewardModel, encoded: EncodedPairs, batch_size: int = 256) -> float:
    """The share of pairs the model ranks like the labeller: r_chosen > r_rejected (ties count
    as wrong). 0.5 is chance; ``bayes_accuracy`` is the ceiling on noisy labels."""
    chosen, rejected = score_pairs(model, encoded, batch_size)
    return float((chosen > rejected).float().mean())


def score_responses(model: RewardModel, tokenizer: Tokenizer, prompts: Sequence[str],
                    responses: Sequence[str], batch_size: int = 256) -> torch.Tensor:
    """Rewards (N,) of ``responses`` to ``prompts`` (questions, without the chat template)."""
    if isinstance(prompts, str) or isinstance(responses, str):
        raise TypeError("prompts and responses must be lists of strings; wrap one in [ ]")
    if len(prompts) == 0:
        return torch.zeros(0)
    ids, last = encode_conversations(tokenizer, prompts, responses, model.config.block_size)
    return rewards_of(model, ids, last, batch_size)


def calibration(margins_pred, labels, bins: int = 10) -> list[tuple[float, float, int]]:
    """Does a predicted P(A preferred) of 0.8 come true 80% of the time?

    margins_pred: (N,) predicted r(A) - r(B); labels: (N,) 1 if A was
    preferred, else 0. Predictions P = sigmoid(margin) are put into ``bins``
    equal-width bins on [0, 1]; for every non-empty bin, returns
    (mean predicted P, observed rate of label 1, count). A calibrated model
    has the first two close.

    For chosen/rejected pairs all labels are 1 by construction; add the
    mirrored pairs to cover both halves:
    ``calibration(torch.cat([m, -m]), torch.cat([ones, zeros]))``.
    """
    if not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    m = torch.as_tensor(margins_pred, dtype=torch.float64).reshape(-1)
    y = torch.as_tensor(labels, dtype=torch.float64).reshape(-1)
    if m.shape != y.shape:
        raise ValueError(f"got {m.numel()} margins but {y.numel()} labels")
    if bool(((y != 0) & (y != 1)).any()):
        raise ValueError("labels must be 0 or 1 (1: the first answer was preferred)")
    p = torch.sigmoid(m)
    which = (p * bins).long().clamp(max=bins - 1)
    table = []
    for k in range(bins):
        sel = which == k
        n = int(sel.sum())
        if n:
            table.append((float(p[sel].mean()), float(y[sel].mean()), n))
    return table


def expected_calibration_error(table: list[tuple[float, float, int]]) -> float:
    """The count-weighted mean gap |predicted - observed| over a ``calibration`` table."""
    total = sum(n for _, _, n in table)
    if total == 0:
        raise ValueError("the calibration table is empty")
    return sum(n * abs(p - rate) for p, rate, n in table) / total
