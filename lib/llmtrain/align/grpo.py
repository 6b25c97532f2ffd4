"""Reinforcement learning with verifiable rewards: GRPO, the way reasoning models are trained.

One GRPO step (Shao et al., 2024, DeepSeekMath; DeepSeek-AI, 2025, DeepSeek-R1):

1. **Group rollout.** Each of ``prompts_per_step`` problems is sampled
   ``group_size`` times from the policy (``GPT.generate`` with the KV cache,
   temperature 1): a group of G answers to the same question.
2. **Verify.** ``reward_fn(problems, completions)`` is a program that checks
   each answer (1 right, 0 wrong). No reward model is learned.
3. **Group-relative advantages.** A response's advantage is its reward minus
   its group's mean, divided by the group's standard deviation
   (``losses.group_advantages``); every token of the response gets it. The
   group's mean replaces PPO's critic: no value model is trained.
4. **Update.** ``epochs`` passes over the rollout with PPO's clipped objective
   per token (``losses.ppo_policy_loss``); optionally ``kl_coef`` times a
   per-token KL estimate to the frozen start model is added to the loss.

How tokens are averaged. GRPO's loss averages each response over its own
tokens, then over the responses (``length_norm=True``). Dr. GRPO (Liu et al.,
2025) points out that dividing by a response's own length weighs the tokens of
a short response more than those of a long one (a long wrong answer is punished
less per token), and divides every response by the same constant (the longest
allowed response) instead (``length_norm=False``); it also drops the division
by the group's standard deviation (``scale_rewards=False``). Both weightings
are per-token weights folded into the advantages, so the loss is
``ppo_policy_loss``'s masked mean all the same (``token_weights``).

Positions are ``ppo.py``'s: a rollout row is ``[left padding, prompt |
response, right padding]``, response token j sits at column P + j, and every
per-token tensor has R = L - P columns, with ``response_mask`` 1 on real
response tokens (up to and including the end-of-text token).

The task of chapter 16 is chapter 14's addition with the column steps
written out (``reasoning``); its verifiers are at the end of this module
(``exact_reward``, the strict one, and ``digits_somewhere_reward``, a sloppy
one), with the pass@k estimator (Chen et al., 2021) used to measure what a
model can sample.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import NamedTuple

import torch

from ..core.device import pick_device
from ..core.generation import encode_prompts
from ..core.losses import group_advantages, kl_estimate, masked_mean, ppo_policy_loss
from ..core.model import GPT
from .ppo import response_logprobs_and_entropy

RewardFn = Callable[[Sequence, Sequence[str]], torch.Tensor]


@dataclass
class GRPOConfig:
    """The knobs of a GRPO run, with defaults that work for the course's tiny adders."""
    steps: int = 100  # GRPO steps (one group rollout and its updates each)
    prompts_per_step: int = 16  # problems per rollout
    group_size: int = 8  # G: answers sampled per problem
    max_new_tokens: int | None = None  # longest answer (None: the room the context leaves)
    temperature: float = 1.0  # sampling temperature of rollouts
    lr: float = 4e-4  # the policy's learning rate (Adam); 1e-3 wrecks a tiny adder in a step
    clip_eps: float = 0.2  # how far a token's probability ratio may move per rollout
    kl_coef: float = 0.04  # beta: weight of the per-token KL to the reference in the loss
    epochs: int = 2  # updates on each rollout (the first at ratio 1, later ones clipped)
    scale_rewards: bool = True  # divide by the group's standard deviation (False: Dr. GRPO)
    length_norm: bool = True  # average each response over its own tokens (False: Dr. GRPO)
    grad_clip: float | None = 1.0  # max gradient norm
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self):
        for name in ("steps", "prompts_per_step", "group_size", "epochs"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"GRPOConfig.{name} must be a positive whole number, got {v!r}")
        if self.group_size < 2:
            raise ValueError(f"GRPOConfig.group_size must be at least 2, got {self.group_size}: "
                             "a group of one answer has nothing to be compared with")
        if self.max_new_tokens is not None and (
                isinstance(self.max_new_tokens, bool) or not isinstance(self.max_new_tokens, int)
                or self.max_new_tokens < 1):
            raise ValueError(f"GRPOConfig.max_new_tokens must be a positive whole number or "
                             f"None, got {self.max_new_tokens!r}")
        for name in ("lr", "clip_eps", "temperature"):
            v = getattr(self, name)
            if isinstance(v, bool) or not (isinstance(v, (int, float)) and math.isfinite(v)
                                           and v > 0):
                raise ValueError(f"GRPOConfig.{name} must be a positive number, got {v!r}")
        if isinstance(self.kl_coef, bool) or not (isinstance(self.kl_coef, (int, float))
                                                  and math.isfinite(self.kl_coef)
                                                  and self.kl_coef >= 0):
            raise ValueError(f"GRPOConfig.kl_coef must be a number >= 0, got {self.kl_coef!r}")
        for name in ("scale_rewards", "length_norm"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"GRPOConfig.{name} must be True or False, got "
                                 f"{getattr(self, name)!r}")
        if self.grad_clip is not None and not (isinstance(self.grad_clip, (int, float))
                                               and self.grad_clip > 0):
            raise ValueError(f"GRPOConfig.grad_clip must be a number > 0 or None, got "
                             f"{self.grad_clip!r}")


class GroupRollout(NamedTuple):
    """One group rollout: ``n`` problems x ``G`` answers, rows ordered problem by problem."""
    ids: torch.Tensor  # (n * G, L) left-padded prompts, then answers, then right padding
    attention_mask: torch.Tensor  # (n * G, L) 1 on real tokens
    prompt_width: int  # P: answer token j is at column P + j
    response_mask: torch.Tensor  # (n * G, R) 1 on answer tokens (end of text included)
    logprobs: torch.Tensor  # (n * G, R) log pi_old(token): the policy that sampled
    ref_logprobs: torch.Tensor  # (n * G, R) log pi_ref(token)
    rewards: torch.Tensor  # (n, G) the verifier's rewards
    advantages: torch.Tensor  # (n, G) group-relative advantages
    finished: torch.Tensor  # (n * G,) bool: the answer ended with end of text
    completions: list[str]  # n * G answers, as text
    problems: list  # the n problems


# --- sampling ------------------------------------------------------------------------------
@torch.no_grad()
def sample_groups(policy: GPT, tokenizer, prompts: Sequence[str], group_size: int,
                  max_new_tokens: int | None = None, temperature: float = 1.0,
                  generator: torch.Generator | None = None):
    """Sample ``group_size`` answers to every prompt in one batch: (ids, attention_mask, P,
    response_mask, finished, completions), rows ordered prompt by prompt.

    Prompts are left-padded to a common width P (``encode_prompts``). An answer
    ends with its first end-of-text token, which counts as one of its tokens
    (the model chose to stop); what follows is padding.
    """
    if isinstance(prompts, str) or not prompts:
        raise ValueError("prompts must be a non-empty list of strings")
    device = next(policy.parameters()).device
    idx, mask = encode_prompts(tokenizer, [p for p in prompts for _ in range(group_size)],
                               device=device)
    P = idx.shape[1]
    room = policy.config.block_size - P
    max_new_tokens = room if max_new_tokens is None else max_new_tokens
    if max_new_tokens < 1 or max_new_tokens > room:
        raise ValueError(f"prompts of {P} tokens leave room for {room} new tokens in the "
                         f"model's context ({policy.config.block_size}), not {max_new_tokens}")
    out = policy.generate(idx, max_new_tokens, temperature=temperature,
                          stop_tokens=[tokenizer.eot_id], attention_mask=mask,
                          pad_id=tokenizer.pad_id, generator=generator)
    gen = out[:, P:]
    is_stop = gen == tokenizer.eot_id
    before = torch.cumsum(is_stop.long(), dim=1) - is_stop.long()  # stops strictly before j
    response_mask = (before == 0).long()
    finished = is_stop.any(dim=1)
    completions = [tokenizer.decode([t for t, keep in zip(row, m) if keep])
                   for row, m in zip(gen.tolist(), response_mask.tolist())]
    return out, torch.cat([mask, response_mask], dim=1), P, response_mask, finished, completions


def response_logprobs(model: GPT, ids: torch.Tensor, attention_mask: torch.Tensor,
                      prompt_width: int, temperature: float = 1.0) -> torch.Tensor:
    """log p of every answer token under ``model``: (B, R), as PPO computes it."""
    return response_logprobs_and_entropy(model, ids, attention_mask, prompt_width,
                                         temperature)[0]


# --- the loss --------------------------------------------------------------------------------
def token_weights(response_mask: torch.Tensor, length_norm: bool = True,
                  max_len: int | None = None) -> torch.Tensor:
    """Per-token weights (B, R) that turn a masked mean over all tokens into GRPO's average.

    ``length_norm=True`` (GRPO): the mean over each response's own tokens, then
    the mean over the B responses, so every response counts once whatever its
    length. ``length_norm=False`` (Dr. GRPO): each response's token sum divided
    by the same constant ``max_len`` (default: R), then the mean over responses.
    Both are written as ``masked_mean(weights * x, mask)``, the form
    ``ppo_policy_loss`` computes.
    """
    m = response_mask.float()
    B, R = m.shape
    total = m.sum()
    if length_norm:
        return total / (B * m.sum(dim=1, keepdim=True).clamp(min=1)) * m
    return (total / (B * (max_len or R))) * m


def grpo_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, ref_logprobs: torch.Tensor,
              advantages: torch.Tensor, response_mask: torch.Tensor, clip_eps: float = 0.2,
              kl_coef: float = 0.0, length_norm: bool = True, max_len: int | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """GRPO's loss for one batch of answers: (loss, clip_fraction).

    logprobs, old_logprobs, ref_logprobs, response_mask: (B, R) per answer token;
    advantages: (B,) one per answer. The clipped objective is PPO's
    (``ppo_policy_loss``) with each answer's advantage on all its tokens, weighted
    by ``token_weights``; ``kl_coef`` > 0 adds the same weighted average of the
    "k3" KL estimate to the reference (never negative), as DeepSeekMath does.
    """
    if advantages.ndim != 1 or advantages.shape[0] != logprobs.shape[0]:
        raise ValueError(f"advantages must have shape (B,) = ({logprobs.shape[0]},), one per "
                         f"answer, got {tuple(advantages.shape)}: flatten the (n, G) groups")
    m = response_mask.float()
    w = token_weights(m, length_norm, max_len)
    logprobs = logprobs * m  # padding after an answer counts for nothing (and overflows nothing)
    loss, clip_fraction = ppo_policy_loss(logprobs, old_logprobs * m, advantages[:, None] * w,
                                          m, clip_eps)
    if kl_coef:
        kl = kl_estimate(logprobs, ref_logprobs * m, "k3")
        loss = loss + kl_coef * masked_mean(w * kl, m)
    return loss, clip_fraction


# --- training --------------------------------------------------------------------------------
@dataclass
class GRPOHistory:
    """Per-step averages over each rollout (lists of equal length), evaluations, examples."""
    step: list[int] = field(default_factory=list)
    reward: list[float] = field(default_factory=list)  # mean verifier reward of the rollout
    kl: list[float] = field(default_factory=list)  # KL to the reference per answer (nats, k1)
    length: list[float] = field(default_factory=list)  # answer tokens (end of text included)
    signal: list[float] = field(default_factory=list)  # share of groups whose rewards differ
    clip_fraction: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)  # {"step": s, **eval_fn(policy)}
    seconds: float = 0.0
    samples: list[dict] = field(default_factory=list)  # {"step", "prompt", "completion", ...}

    def last(self, key: str, n: int = 5) -> float:
        """Mean of the last ``n`` logged values of ``key`` (smooths one rollout's noise)."""
        values = getattr(self, key)[-n:]
        return sum(values) / len(values) if values else float("nan")

    def to_dict(self) -> dict:
        return asdict(self)


class GRPOTrainer:
    """Runs GRPO on ``policy`` (trained in place) against ``reward_fn``; see the module doc.

    ``problems`` are objects with a ``prompt`` string (``reasoning.Problem``);
    ``reward_fn(problems, completions)`` gives one number per completion.
    ``reference`` defaults to a frozen copy of the policy as it is now; it is
    used by the KL penalty (when ``kl_coef`` > 0) and to log the KL.
    ``eval_fn(policy) -> dict`` runs every ``eval_every`` steps (and before the
    first); ``callbacks`` are called as ``cb(trainer, step, stats)`` after
    every step (live plots).
    """
    def __init__(self, policy: GPT, tokenizer, problems: Sequence, reward_fn: RewardFn,
                 config: GRPOConfig | None = None, reference: GPT | None = None,
                 eval_fn: Callable[[GPT], dict] | None = None, eval_every: int = 0,
                 callbacks: list[Callable] | None = None):
        self.config = config or GRPOConfig()
        if not problems:
            raise ValueError("problems is empty: give the problems to train on")
        if not all(isinstance(getattr(p, "prompt", None), str) for p in problems):
            raise ValueError("every problem needs a .prompt string (e.g. reasoning.Problem)")
        if isinstance(eval_every, bool) or not isinstance(eval_every, int) or eval_every < 0:
            raise ValueError(f"eval_every must be a whole number >= 0, got {eval_every!r}")
        self.device = pick_device(self.config.device)
        self.policy = policy.to(self.device).requires_grad_(True)
        self.reference = reference if reference is not None else copy.deepcopy(policy)
        if self.reference is policy:
            raise ValueError("the reference must be a separate model: pass a copy of the policy "
                             "(copy.deepcopy(policy)) or leave reference=None")
        self.reference.to(self.device).eval().requires_grad_(False)
        self.tokenizer, self.problems, self.reward_fn = tokenizer, list(problems), reward_fn
        self.eval_fn, self.eval_every = eval_fn, eval_every
        self.callbacks = list(callbacks or [])
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=self.config.lr)
        self.history = GRPOHistory()
        self.steps_done = 0
        self.last_rollout: GroupRollout | None = None

    def problems_for(self, step: int) -> list:
        """The problems of ``step``: a pure function of (seed, step)."""
        rng = random.Random(f"grpo/{self.config.seed}/{step}")
        return rng.sample(self.problems, min(self.config.prompts_per_step, len(self.problems)))

    def generator_for(self, step: int) -> torch.Generator:
        """The random stream the answers of ``step`` are sampled with."""
        return torch.Generator().manual_seed(self.config.seed * 100_003 + step)

    @torch.no_grad()
    def rollout(self, step: int | None = None) -> GroupRollout:
        """Sample the groups of ``step`` (default: the next), verify them, compute advantages."""
        cfg = self.config
        step = self.steps_done if step is None else step
        problems = self.problems_for(step)
        self.policy.eval()
        ids, attn, P, rmask, finished, texts = sample_groups(
            self.policy, self.tokenizer, [p.prompt for p in problems], cfg.group_size,
            cfg.max_new_tokens, cfg.temperature, self.generator_for(step))
        m = rmask.float()
        logp = response_logprobs(self.policy, ids, attn, P, cfg.temperature) * m
        ref_logp = response_logprobs(self.reference, ids, attn, P, cfg.temperature) * m
        flat = [p for p in problems for _ in range(cfg.group_size)]
        rewards = torch.as_tensor(self.reward_fn(flat, texts), dtype=torch.float32)
        if rewards.shape != (len(flat),):
            raise ValueError(f"reward_fn must return one reward per completion, shape "
                             f"({len(flat)},), got {tuple(rewards.shape)}")
        rewards = rewards.view(len(problems), cfg.group_size).to(ids.device)
        advantages = group_advantages(rewards, scale=cfg.scale_rewards)
        return GroupRollout(ids, attn, P, rmask, logp, ref_logp, rewards, advantages, finished,
                            texts, problems)

    def step(self) -> dict:
        """One GRPO step: a group rollout, then ``epochs`` updates on it."""
        cfg = self.config
        start = time.perf_counter()
        if self.steps_done == 0 and self.eval_fn is not None and not self.history.evals:
            self.history.evals.append({"step": 0, **self.eval_fn(self.policy)})
        ro = self.rollout()
        m = ro.response_mask.float()
        advantages = ro.advantages.reshape(-1)
        max_len = cfg.max_new_tokens or self.policy.config.block_size - ro.prompt_width
        self.policy.train()
        losses, clip_fracs = [], []
        for _ in range(cfg.epochs):
            logp = response_logprobs(self.policy, ro.ids, ro.attention_mask, ro.prompt_width,
                                     cfg.temperature)
            loss, clip_frac = grpo_loss(logp, ro.logprobs, ro.ref_logprobs, advantages, m,
                                        cfg.clip_eps, cfg.kl_coef, cfg.length_norm, max_len)
            self._update(loss)
            losses.append(float(loss.detach()))
            clip_fracs.append(float(clip_frac))
        self.policy.eval()
        self.last_rollout = ro
        self.steps_done += 1
        stats = self._stats(ro, losses, clip_fracs)
        for key, value in stats.items():
            getattr(self.history, key).append(value)
        if self.steps_done % 10 == 1:  # keep a few answers as examples
            for p, c, r in list(zip([p for p in ro.problems for _ in range(cfg.group_size)],
                                    ro.completions, ro.rewards.reshape(-1).tolist()))[:2]:
                self.history.samples.append({"step": self.steps_done, "prompt": p.prompt,
                                             "completion": c, "reward": r})
        if self.eval_fn is not None and self.eval_every and (
                self.steps_done % self.eval_every == 0 or self.steps_done == cfg.steps):
            self.history.evals.append({"step": self.steps_done, **self.eval_fn(self.policy)})
        self.history.seconds += time.perf_counter() - start
        for cb in self.callbacks:
            cb(self, self.steps_done, stats)
        return stats

    def _update(self, loss: torch.Tensor) -> None:
        if not torch.isfinite(loss):
            raise RuntimeError(
                f"GRPO diverged at step {self.steps_done + 1}: the loss became {float(loss)}. "
                f"Lower the learning rate (lr={self.config.lr:g}).")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.config.grad_clip)
        self.optimizer.step()

    def _stats(self, ro: GroupRollout, losses, clip_fracs) -> dict:
        m = ro.response_mask.float()
        kl = (kl_estimate(ro.logprobs, ro.ref_logprobs, "k1") * m).sum(dim=1)
        spread = (ro.rewards.max(dim=1).values > ro.rewards.min(dim=1).values).float()
        return {"step": self.steps_done, "reward": float(ro.rewards.mean()),
                "kl": float(kl.mean()), "length": float(m.sum(dim=1).mean()),
                "signal": float(spread.mean()),
                "clip_fraction": sum(clip_fracs) / len(clip_fracs),
                "loss": sum(losses) / len(losses)}

    def fit(self, steps: int | None = None) -> GRPOHistory:
        """Run ``steps`` more GRPO steps (default: up to ``config.steps`` in all)."""
        todo = self.config.steps - self.steps_done if steps is None else steps
        for _ in range(max(0, todo)):
            self.step()
        return self.history


# --- measuring what a model can sample: pass@k --------------------------------------------------
def pass_at_k(n: int, c: int, k: int) -> float:
    """The chance that at least one of k answers is right, from n samples of which c are right.

    The unbiased estimator of Chen et al. (2021): 1 - C(n - c, k) / C(n, k),
    the share of the k-subsets of the n samples that hold a right one.
    """
    if not (isinstance(n, int) and isinstance(c, int) and isinstance(k, int)):
        raise TypeError(f"n, c and k must be whole numbers, got {n!r}, {c!r}, {k!r}")
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def pass_at_k_curve(correct: torch.Tensor, ks: Sequence[int]) -> list[float]:
    """pass@k averaged over problems, for each k: ``correct`` is (problems, n) bool."""
    if correct.ndim != 2:
        raise ValueError(f"correct must be (problems, samples), got {tuple(correct.shape)}")
    n = correct.shape[1]
    counts = correct.sum(dim=1).tolist()
    return [sum(pass_at_k(n, int(c), k) for c in counts) / len(counts) for k in ks]


@torch.no_grad()
def sample_correct(model: GPT, tokenizer, problems: Sequence, reward_fn: RewardFn,
                   samples: int, seed: int = 0, temperature: float = 1.0,
                   batch_size: int = 2048) -> tuple[torch.Tensor, list[list[str]]]:
    """Sample ``samples`` answers per problem and verify them: ((problems, samples) bool,
    the answers per problem)."""
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be a positive whole number, got {samples!r}")
    gen = torch.Generator().manual_seed(seed)
    per = max(1, batch_size // samples)
    right, texts = [], []
    for i in range(0, len(problems), per):
        chunk = list(problems[i: i + per])
        *_, completions = sample_groups(model, tokenizer, [p.prompt for p in chunk], samples,
                                        None, temperature, gen)
        flat = [p for p in chunk for _ in range(samples)]
        r = torch.as_tensor(reward_fn(flat, completions), dtype=torch.float32)
        right.append(r.view(len(chunk), samples) > 0.5)
        texts += [completions[j * samples: (j + 1) * samples] for j in range(len(chunk))]
    return torch.cat(right), texts


# --- the addition task's verifiers ------------------------------------------------------------
def final_answer_text(completion: str) -> str:
    """What the verifiers read as the answer: the text after the last ``;``, spaces stripped
    (all of the completion when it has no ``;``)."""
    return completion.rsplit(";", 1)[-1].strip()


def exact_reward(problems: Sequence, completions: Sequence[str]) -> torch.Tensor:
    """The strict verifier: 1 when the final answer is exactly the sum, else 0."""
    _check_pairs(problems, completions)
    return torch.tensor([float(final_answer_text(c) == p.answer)
                         for p, c in zip(problems, completions)])


def digits_somewhere_reward(problems: Sequence, completions: Sequence[str]) -> torch.Tensor:
    """A sloppy verifier: 1 when every digit of the sum appears somewhere in the final answer.

    It reads the final answer as the strict verifier does (``final_answer_text``)
    and never checks the order of the digits, how many there are, or what else
    is written there.
    """
    _check_pairs(problems, completions)
    return torch.tensor([float(set(p.answer) <= set(final_answer_text(c)))
                         for p, c in zip(problems, completions)])


def _check_pairs(problems, completions) -> None:
    if isinstance(completions, str) or len(problems) != len(completions):
        raise ValueError(f"need one completion per problem, got {len(problems)} problems and "
                         f"{1 if isinstance(completions, str) else len(completions)} completions")
