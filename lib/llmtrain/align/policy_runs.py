"""Preference tuning of the course assistant: the shared prompts, runs and measurements.

Chapters 08 (PPO) and 09 (DPO) and the zoo's aligned checkpoints use the
same pieces, so that their numbers are comparable:

* ``rl_prompts()``: the questions PPO trains on, about the people whose
  preference pairs trained the reward model (the reward model's test people
  are left out);
* ``eval_prompts()``: fresh questions about the test people, where every
  policy is measured;
* ``measure_policy``: proxy (reward model) and gold (hidden judge) reward,
  KL to the SFT model, response length and the kinds of answers, on sampled
  responses (temperature 1, as the policy is trained), per group of people;
* ``run_ppo`` / ``run_dpo``: the recipes of the zoo's ``ppo``, ``ppo-nokl``
  and ``dpo`` checkpoints;
* ``online_pairs``: pairs of the policy's own samples ordered by the reward
  model, for DPO on on-policy data (the zoo's ``dpo-online``).
"""

from __future__ import annotations

import copy
import random
from collections import Counter

from ..world.answers import Example
from ..world.fiction import World
from ..world.judge import judge_category
from .dpo import train_dpo
from .ppo import PPOConfig, PPOTrainer, evaluate_policy, gold_scorer, reward_model_scorer
from .preferences import PreferencePair, is_test_person, sample_answers
from .reward_model import EncodedPairs, encode_pairs
from .sft import qa_examples

SPLITS = ("sft", "heldout", "unseen")


def rl_prompts(world: World, seed: int = 2) -> list[Example]:
    """Questions about every fact of the reward model's training people (phrasings of ``seed``)."""
    return [e for e in qa_examples(world, SPLITS, seed=seed)
            if not is_test_person(e.person.name)]


def eval_prompts(world: World, n: int = 300, seed: int = 3) -> list[Example]:
    """``n`` questions about the reward model's test people, in a fixed shuffled order."""
    exs = [e for e in qa_examples(world, SPLITS, seed=seed) if is_test_person(e.person.name)]
    random.Random(f"eval/{seed}").shuffle(exs)
    return exs[:n]


def kinds_by_split(examples, responses) -> dict[str, dict[str, float]]:
    """Share of each judge kind (correct, abstain, wrong, off_format) per group of people."""
    counts: dict[str, Counter] = {}
    for e, r in zip(examples, responses):
        counts.setdefault(e.person.split, Counter())[judge_category(r, e.person, e.attribute)] += 1
    return {split: {k: c[k] / sum(c.values()) for k in ("correct", "abstain", "wrong",
                                                         "off_format")}
            for split, c in counts.items()}


def measure_policy(policy, reference, reward_model, tokenizer, examples, samples: int = 2,
                   seed: int = 0, temperature: float = 1.0) -> dict:
    """Sampled responses to ``examples`` scored by the reward model and the judge.

    Returns proxy, gold, kl (nats per response against ``reference``), length
    (tokens), and per group of people the gold reward and the share of each
    kind of answer.
    """
    rfn, gfn = reward_model_scorer(reward_model, tokenizer), gold_scorer()
    out = evaluate_policy(policy, reference, tokenizer, examples, rfn, gfn, samples=samples,
                          seed=seed, temperature=temperature)
    responses = out.pop("responses")
    gold = gfn(examples, responses).tolist()
    out["kinds"] = kinds_by_split(examples, responses)
    out["gold_by_split"] = {s: sum(g for g, e in zip(gold, examples) if e.person.split == s)
                            / max(1, sum(e.person.split == s for e in examples))
                            for s in SPLITS}
    out["responses"] = responses
    return out


def run_ppo(policy, reward_model, tokenizer, world: World, config: PPOConfig,
            callbacks=None, reward_fn=None) -> tuple[PPOTrainer, object]:
    """PPO on ``rl_prompts`` against ``reward_model`` (or ``reward_fn``, e.g. a
    constitution), the critic started from the reward model.

    ``policy`` is trained in place; the reference is a frozen copy of it as
    given. Returns the trainer and its history.
    """
    reference = copy.deepcopy(policy).eval()
    reward_fn = reward_fn or reward_model_scorer(reward_model, tokenizer)
    trainer = PPOTrainer(policy, tokenizer, rl_prompts(world), reward_fn, config,
                         reference=reference, reward_model=reward_model,
                         gold_fn=gold_scorer(), callbacks=callbacks)
    return trainer, trainer.fit()


def run_dpo(policy, tokenizer, train_pairs, steps: int, beta: float, lr: float,
            batch_size: int = 32, seed: int = 0, device: str = "auto", eval_fn=None,
            eval_every: int = 0, callbacks=None, nll_coef: float = 0.0):
    """DPO on ``train_pairs`` (the reward model's training pairs, or those pairs already
    encoded by ``reward.encode_pairs``, to encode them once for several runs); the
    reference is a frozen copy of ``policy`` as given. Returns the training History."""
    reference = copy.deepcopy(policy).eval()
    encoded = (train_pairs if isinstance(train_pairs, EncodedPairs)
               else encode_pairs(tokenizer, train_pairs, policy.config.block_size))
    return train_dpo(policy, reference, encoded, tokenizer.assistant_id, steps=steps,
                     beta=beta, batch_size=batch_size, lr=lr, seed=seed, device=device,
                     eval_fn=eval_fn, eval_every=eval_every, callbacks=callbacks,
                     nll_coef=nll_coef)



def online_pairs(policy, reward_fn, tokenizer, examples, samples: int = 4, seed: int = 0,
                 min_gap: float = 0.5, temperature: float = 1.0) -> list[PreferencePair]:
    """DPO pairs from the policy's own answers: ``samples`` answers per question, the one
    ``reward_fn`` scores highest against the one it scores lowest.

    Questions whose best and worst answers are equal, or score less than ``min_gap``
    apart, give no pair. ``margin_gold`` holds the score gap (the labeller here is the
    reward function, not the hidden judge).
    """
    if samples < 2:
        raise ValueError(f"samples must be >= 2 to make a pair, got {samples}")
    if min_gap < 0:
        raise ValueError(f"min_gap must be >= 0, got {min_gap}")
    examples = list(examples)
    answers = sample_answers(policy, tokenizer, examples, n=samples, temperature=temperature,
                             seed=seed)
    flat_examples = [e for e in examples for _ in range(samples)]
    scores = reward_fn(flat_examples, [a for row in answers for a in row])
    scores = scores.reshape(len(examples), samples)
    pairs = []
    for e, row, sc in zip(examples, answers, scores):
        hi, lo = int(sc.argmax()), int(sc.argmin())
        gap = float(sc[hi] - sc[lo])
        if row[hi] != row[lo] and gap > min_gap:
            pairs.append(PreferencePair(e.question, row[hi], row[lo], gap, e.person,
                                        e.attribute))
    return pairs
