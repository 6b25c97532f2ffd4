"""RLHF with PPO: the policy writes, a reward model scores, PPO nudges the policy.

One PPO step (Ouyang et al., 2022; Schulman et al., 2017):

1. **Rollout.** Sample a response to each of a batch of prompts from the
   policy (``GPT.generate`` with the KV cache, temperature 1).
2. **Score.** ``reward_fn`` gives each whole response one number (the reward
   model's score, read at its closing ``<|end|>``). A response that never
   closes loses ``unfinished_penalty``.
3. **Per-token rewards.** Every token also pays a KL penalty,
   ``-kl_coef * (log pi(token) - log pi_ref(token))``, against the frozen
   reference (the SFT model): the further the policy drifts, the more it pays.
   The score is added at the last token.
4. **Advantages.** A critic (``ValueModel``, started from the reward model)
   predicts the return at every token; generalised advantage estimation
   (``losses.gae``) turns rewards and values into advantages, which are
   whitened over the batch.
5. **Update.** A few epochs over minibatches of the rollout: the clipped
   policy objective (``losses.ppo_policy_loss``) with an optional entropy
   bonus for the policy, the clipped value loss for the critic.

Four models take part: the policy (trained), the reference (frozen copy of
the SFT model), the reward model (frozen) and the critic (trained). Prompts
are ``sft.Example`` objects, so every response can also be scored by the
hidden judge (``gold_fn``): the gold reward is logged, never trained on.

Positions. A rollout row is ``[left padding, prompt | response, right padding]``;
all prompts end at column P - 1, so response token j sits at column P + j.
The log-probability of that token and the critic's value before it are read
at column P - 1 + j. Every per-token tensor here has R = L - P columns, one
per response token, and ``response_mask`` says which are real.
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
import torch.nn as nn

from ..core.chat import chat_prompt
from ..core.device import pick_device
from ..core.generation import encode_prompts
from ..core.losses import (
    clipped_value_loss,
    gae,
    kl_estimate,
    masked_mean,
    ppo_policy_loss,
    token_entropy,
    whiten,
)
from ..core.model import GPT
from ..core.tokenizer import Tokenizer
from ..world.answers import Example
from ..world.judge import judge_score
from .reward_model import score_responses

RewardFn = Callable[[Sequence[Example], Sequence[str]], torch.Tensor]


@dataclass
class PPOConfig:
    """The knobs of a PPO run, with defaults that work for the course's tiny models."""
    steps: int = 100  # PPO steps (one rollout and its updates each)
    batch_size: int = 64  # prompts per rollout
    max_new_tokens: int = 16  # longest response
    temperature: float = 1.0  # sampling temperature of rollouts
    kl_coef: float = 0.05  # beta: price per nat of KL to the reference, per token
    clip_eps: float = 0.2  # past 1 +- clip_eps a token's ratio earns no more (not a hard limit)
    value_clip: float | None = 0.2  # the critic's clip (None: plain squared error)
    entropy_coef: float = 0.0  # bonus per nat of entropy of the policy
    gamma: float = 1.0  # discount per token
    lam: float = 0.95  # GAE's lambda
    epochs: int = 2  # passes over each rollout
    minibatches: int = 2  # minibatches per pass
    lr: float = 5e-5  # the policy's learning rate (Adam)
    critic_lr: float = 3e-4  # the critic's learning rate
    grad_clip: float | None = 1.0  # max gradient norm of each model
    unfinished_penalty: float = 1.0  # subtracted from the score of a response with no <|end|>
    whiten_advantages: bool = True
    critic_warmup: int = 0  # first steps that train only the critic (the policy waits)
    seed: int = 0
    device: str = "auto"

    def __post_init__(self):
        def positive_int(name):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"PPOConfig.{name} must be a positive whole number, got {v!r}")

        for name in ("steps", "batch_size", "max_new_tokens", "epochs", "minibatches"):
            positive_int(name)
        if isinstance(self.critic_warmup, bool) or not isinstance(self.critic_warmup, int) \
                or self.critic_warmup < 0:
            raise ValueError(f"PPOConfig.critic_warmup must be a whole number >= 0, got "
                             f"{self.critic_warmup!r}")
        if self.minibatches > self.batch_size:
            raise ValueError(f"minibatches ({self.minibatches}) cannot exceed batch_size "
                             f"({self.batch_size}): each minibatch needs at least one prompt")
        for name in ("lr", "critic_lr", "clip_eps", "temperature"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"PPOConfig.{name} must be a positive number, got {v!r}")
        for name in ("kl_coef", "entropy_coef", "unfinished_penalty"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"PPOConfig.{name} must be a number >= 0, got {v!r}")
        if not (0 <= self.gamma <= 1 and 0 <= self.lam <= 1):
            raise ValueError(f"gamma and lam must be in [0, 1], got {self.gamma}, {self.lam}")


class ValueModel(nn.Module):
    """The critic: a GPT backbone with a scalar head at every position, (B, T) -> (B, T).

    ``values[:, t]`` predicts the rest of the episode's reward after reading
    tokens 0..t. It usually starts as a copy of the reward model, which already
    judges whole answers.
    """
    def __init__(self, backbone: GPT, head: nn.Linear | None = None):
        super().__init__()
        self.backbone = backbone
        self.head = head if head is not None else nn.Linear(backbone.config.n_embd, 1)

    @classmethod
    def from_reward_model(cls, reward_model) -> ValueModel:
        """A critic that starts as a copy of ``reward_model`` (backbone and head)."""
        return cls(copy.deepcopy(reward_model.backbone), copy.deepcopy(reward_model.head))

    @property
    def config(self):
        return self.backbone.config

    def forward(self, idx: torch.Tensor, attention_mask: torch.Tensor | None = None):
        h = self.backbone.hidden_states(idx, attention_mask=attention_mask)  # (B, T, C)
        return self.head(h).squeeze(-1).float()  # (B, T)


class Rollout(NamedTuple):
    """One batch of sampled responses and everything PPO needs about them (see module doc)."""
    ids: torch.Tensor  # (B, L) left-padded prompts, then responses, then right padding
    attention_mask: torch.Tensor  # (B, L) 1 on real tokens
    prompt_width: int  # P: response token j is at column P + j
    response_mask: torch.Tensor  # (B, R) 1 on response tokens (up to and including <|end|>)
    logprobs: torch.Tensor  # (B, R) log pi(token) at sampling time
    ref_logprobs: torch.Tensor  # (B, R) log pi_ref(token)
    values: torch.Tensor  # (B, R) the critic's values at sampling time
    entropy: torch.Tensor  # (B, R) entropy of the policy's next-token distribution
    scores: torch.Tensor  # (B,) reward_fn's score minus the unfinished penalty
    proxy: torch.Tensor  # (B,) reward_fn's score alone
    finished: torch.Tensor  # (B,) bool: the response closed with <|end|>
    responses: list[str]
    examples: list[Example]


# --- sampling and scoring -------------------------------------------------------------
@torch.no_grad()
def sample_responses(policy: GPT, tokenizer: Tokenizer, examples: Sequence[Example],
                     max_new_tokens: int, temperature: float = 1.0,
                     generator: torch.Generator | None = None):
    """Sample one response per example: (ids, attention_mask, P, response_mask, finished, texts).

    Prompts are the chat template of each question (``sft.chat_prompt``),
    left-padded to a common width P. A response ends after its first
    ``<|end|>`` (or ``<|endoftext|>``); what follows is padding.
    """
    device = next(policy.parameters()).device
    prompts = [chat_prompt(e.question) for e in examples]
    idx, mask = encode_prompts(tokenizer, prompts, device=device)
    P = idx.shape[1]
    if P + max_new_tokens > policy.config.block_size:
        raise ValueError(f"prompts of {P} tokens plus max_new_tokens={max_new_tokens} exceed the "
                         f"model's context ({policy.config.block_size}): lower max_new_tokens")
    stops = [tokenizer.end_id, tokenizer.eot_id]
    out = policy.generate(idx, max_new_tokens, temperature=temperature, stop_tokens=stops,
                          attention_mask=mask, pad_id=tokenizer.pad_id, generator=generator)
    gen = out[:, P:]
    is_stop = torch.isin(gen, torch.tensor(stops, device=gen.device))
    before = torch.cumsum(is_stop.long(), dim=1) - is_stop.long()  # stops strictly before j
    response_mask = (before == 0).long()
    finished = is_stop.any(dim=1)
    texts = []
    for row, m in zip(gen.tolist(), response_mask.tolist()):
        tokens = [t for t, keep in zip(row, m) if keep and t not in stops]
        texts.append(tokenizer.decode(tokens).strip())
    attention_mask = torch.cat([mask, response_mask], dim=1)
    return out, attention_mask, P, response_mask, finished, texts


def response_logprobs_and_entropy(model: GPT, ids: torch.Tensor, attention_mask: torch.Tensor,
                                  prompt_width: int, temperature: float = 1.0
                                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """log p of every response token and the entropy before it: two (B, R) tensors.

    The distribution is the one responses are sampled from: softmax(logits /
    temperature). Only the response columns go through the output layer (the
    vocabulary projection is most of the cost of a small model's forward pass).
    """
    h = model.hidden_states(ids, attention_mask=attention_mask)[:, prompt_width - 1 : -1]
    logits = model.lm_head(h).float() / temperature  # (B, R, V)
    logp = torch.log_softmax(logits, dim=-1)
    targets = ids[:, prompt_width:]
    token_logp = logp.gather(-1, targets[..., None]).squeeze(-1)
    return token_logp, token_entropy(logits)


def critic_values(critic: ValueModel, ids: torch.Tensor, attention_mask: torch.Tensor,
                  prompt_width: int) -> torch.Tensor:
    """The critic's value before every response token: (B, R)."""
    return critic(ids, attention_mask=attention_mask)[:, prompt_width - 1 : -1]


def reward_model_scorer(reward_model, tokenizer: Tokenizer) -> RewardFn:
    """A ``reward_fn``: the reward model's score of each (question, response)."""
    def score(examples: Sequence[Example], responses: Sequence[str]) -> torch.Tensor:
        return score_responses(reward_model, tokenizer, [e.question for e in examples],
                               list(responses))
    return score


def gold_scorer() -> RewardFn:
    """A ``reward_fn``: the hidden judge's gold score (for measuring, never for training)."""
    def score(examples: Sequence[Example], responses: Sequence[str]) -> torch.Tensor:
        return torch.tensor([judge_score(r, e.person, e.attribute)
                             for e, r in zip(examples, responses)])
    return score


@torch.no_grad()
def make_rollout(policy: GPT, reference: GPT, critic: ValueModel, tokenizer: Tokenizer,
                 examples: Sequence[Example], reward_fn: RewardFn, config: PPOConfig,
                 generator: torch.Generator | None = None) -> Rollout:
    """Sample, then compute log-probs (policy and reference), values, entropies and scores."""
    policy.eval()
    ids, attn, P, rmask, finished, texts = sample_responses(
        policy, tokenizer, examples, config.max_new_tokens, config.temperature, generator)
    logp, entropy = response_logprobs_and_entropy(policy, ids, attn, P, config.temperature)
    ref_logp, _ = response_logprobs_and_entropy(reference, ids, attn, P, config.temperature)
    values = critic_values(critic, ids, attn, P)
    proxy = torch.as_tensor(reward_fn(list(examples), texts), dtype=torch.float32).to(ids.device)
    if proxy.shape != (len(examples),):
        raise ValueError(f"reward_fn must return one score per response, shape "
                         f"({len(examples)},), got {tuple(proxy.shape)}")
    scores = proxy - config.unfinished_penalty * (~finished).float()
    m = rmask.float()
    return Rollout(ids, attn, P, rmask, logp * m, ref_logp * m, values * m, entropy * m, scores,
                   proxy, finished, texts, list(examples))


def token_rewards(rollout: Rollout, kl_coef: float) -> torch.Tensor:
    """Per-token rewards (B, R): -kl_coef * log-ratio on every token, the score on the last."""
    m = rollout.response_mask.float()
    rewards = -kl_coef * kl_estimate(rollout.logprobs, rollout.ref_logprobs, "k1") * m
    last = rollout.response_mask.sum(dim=1) - 1  # (B,) column of each response's last token
    rows = torch.arange(rewards.shape[0], device=rewards.device)
    rewards[rows, last] += rollout.scores
    return rewards


# --- training ----------------------------------------------------------------------------
@dataclass
class PPOHistory:
    """Per-step averages over each rollout (lists of equal length) and a few responses."""
    step: list[int] = field(default_factory=list)
    proxy: list[float] = field(default_factory=list)  # reward_fn's score (the reward model)
    gold: list[float] = field(default_factory=list)  # the hidden judge's score
    kl: list[float] = field(default_factory=list)  # KL to the reference per response (nats)
    entropy: list[float] = field(default_factory=list)  # nats per response token
    length: list[float] = field(default_factory=list)  # response tokens
    finished: list[float] = field(default_factory=list)  # share of responses that closed
    clip_fraction: list[float] = field(default_factory=list)
    policy_loss: list[float] = field(default_factory=list)
    value_loss: list[float] = field(default_factory=list)
    seconds: float = 0.0
    samples: list[dict] = field(default_factory=list)  # {"step", "question", "response", ...}

    def last(self, key: str, n: int = 10) -> float:
        """Mean of the last ``n`` logged values of ``key`` (smooths the noise of one rollout)."""
        values = getattr(self, key)[-n:]
        return sum(values) / len(values) if values else float("nan")

    def to_dict(self) -> dict:
        return asdict(self)


class PPOTrainer:
    """Runs PPO on ``policy`` (trained in place) against ``reward_fn``; see the module doc.

    ``reference`` defaults to a frozen copy of the policy as it is now (the SFT
    model); ``critic`` to a ``ValueModel`` copied from ``reward_model`` when one
    is given. ``gold_fn`` is only logged. ``callbacks`` are called as
    ``cb(trainer, step, stats)`` after every step (live plots).
    """
    def __init__(self, policy: GPT, tokenizer: Tokenizer, examples: Sequence[Example],
                 reward_fn: RewardFn, config: PPOConfig | None = None,
                 reference: GPT | None = None, critic: ValueModel | None = None,
                 reward_model=None, gold_fn: RewardFn | None = None,
                 callbacks: list[Callable] | None = None):
        self.config = config or PPOConfig()
        if not examples:
            raise ValueError("examples is empty: give the prompts to train on (sft.Example list)")
        if critic is None:
            if reward_model is None:
                raise ValueError("pass a critic (ValueModel) or the reward_model to start one from")
            critic = ValueModel.from_reward_model(reward_model)
        self.device = pick_device(self.config.device)
        self.policy = policy.to(self.device)
        self.reference = (reference if reference is not None else copy.deepcopy(policy))
        if self.reference is policy:
            raise ValueError("the reference must be a separate model: pass a copy of the policy "
                             "(copy.deepcopy(policy)) or leave reference=None")
        self.reference.to(self.device).eval().requires_grad_(False)
        # trainable even when it was copied from a model frozen as some run's reference
        self.policy.requires_grad_(True)
        self.critic = critic.to(self.device)
        self.tokenizer, self.examples = tokenizer, list(examples)
        self.reward_fn, self.gold_fn = reward_fn, gold_fn
        self.callbacks = list(callbacks or [])
        self.policy_opt = torch.optim.Adam(self.policy.parameters(), lr=self.config.lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=self.config.critic_lr)
        self.history = PPOHistory()
        self.steps_done = 0
        self.last_rollout: Rollout | None = None
        self.last_advantages: torch.Tensor | None = None

    def prompts_for(self, step: int) -> list[Example]:
        """The batch of prompts of ``step``: a pure function of (seed, step)."""
        rng = random.Random(f"ppo/{self.config.seed}/{step}")
        return rng.sample(self.examples, min(self.config.batch_size, len(self.examples)))

    def step(self) -> dict:
        """One PPO step: rollout, advantages, ``epochs`` x ``minibatches`` updates."""
        cfg = self.config
        start = time.perf_counter()
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + self.steps_done)
        batch = self.prompts_for(self.steps_done)
        ro = make_rollout(self.policy, self.reference, self.critic, self.tokenizer, batch,
                          self.reward_fn, cfg, gen)
        out = self.update(ro)
        stats = self._stats(ro, out["clip_fractions"], out["policy_losses"], out["value_losses"])
        self.last_rollout = ro._replace()  # kept for inspection (chapter 08 dissects one)
        self.last_advantages = out["advantages"]
        self.steps_done += 1
        self.history.seconds += time.perf_counter() - start
        for key, value in stats.items():
            getattr(self.history, key).append(value)
        if self.steps_done % 10 == 1:  # keep a few responses as examples
            for e, r, p in list(zip(ro.examples, ro.responses, ro.proxy.tolist()))[:3]:
                self.history.samples.append({"step": self.steps_done, "question": e.question,
                                             "response": r, "proxy": round(p, 3)})
        for cb in self.callbacks:
            cb(self, self.steps_done, stats)
        return stats

    def update(self, rollout: Rollout) -> dict:
        """The learning half of ``step``, on a frozen ``rollout``: per-token rewards,
        advantages (GAE, whitened), then ``epochs`` passes over ``minibatches`` shuffled
        minibatches, each one gradient step of the policy and one of the critic.

        The shuffles are a pure function of (seed, steps_done, epoch); ``steps_done`` is
        not advanced and nothing is logged (``step`` does both). Returns {"advantages",
        "returns": (B, R), "clip_fractions", "policy_losses", "value_losses": one float per
        minibatch}. Chapter 08 repeats one update by hand and compares the weights.
        """
        cfg, ro = self.config, rollout
        mask = ro.response_mask.float()
        rewards = token_rewards(ro, cfg.kl_coef)
        advantages, returns = gae(rewards, ro.values, cfg.gamma, cfg.lam, mask)
        if cfg.whiten_advantages:
            advantages = whiten(advantages, mask)
        self.policy.train()
        self.critic.train()
        B = ro.ids.shape[0]
        clip_fracs, policy_losses, value_losses = [], [], []
        for epoch in range(cfg.epochs):
            order = torch.randperm(B, generator=torch.Generator().manual_seed(
                cfg.seed * 7919 + self.steps_done * 31 + epoch))
            for rows in order.chunk(cfg.minibatches):
                rows = rows.to(self.device)
                ids, attn, m = ro.ids[rows], ro.attention_mask[rows], mask[rows]
                logp, entropy = response_logprobs_and_entropy(self.policy, ids, attn,
                                                              ro.prompt_width, cfg.temperature)
                loss, clip_frac = ppo_policy_loss(logp * m, ro.logprobs[rows], advantages[rows],
                                                  m, cfg.clip_eps)
                if cfg.entropy_coef:
                    loss = loss - cfg.entropy_coef * masked_mean(entropy, m)
                if self.steps_done >= cfg.critic_warmup:
                    self._update(self.policy, self.policy_opt, loss)
                values = critic_values(self.critic, ids, attn, ro.prompt_width)
                v_loss = clipped_value_loss(values * m, ro.values[rows], returns[rows], m,
                                            cfg.value_clip)
                self._update(self.critic, self.critic_opt, v_loss)
                clip_fracs.append(float(clip_frac))
                policy_losses.append(float(loss.detach()))
                value_losses.append(float(v_loss.detach()))
        self.policy.eval()
        self.critic.eval()
        return {"advantages": advantages.detach(), "returns": returns.detach(),
                "clip_fractions": clip_fracs, "policy_losses": policy_losses,
                "value_losses": value_losses}

    def _update(self, model: nn.Module, optimizer, loss: torch.Tensor) -> None:
        if not torch.isfinite(loss):
            raise RuntimeError(
                f"PPO diverged at step {self.steps_done + 1}: the loss became {float(loss)}. "
                f"Lower the learning rate (lr={self.config.lr:g}) or raise kl_coef.")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), self.config.grad_clip)
        optimizer.step()

    def _stats(self, ro: Rollout, clip_fracs, policy_losses, value_losses) -> dict:
        mask = ro.response_mask.float()
        kl = (kl_estimate(ro.logprobs, ro.ref_logprobs, "k1") * mask).sum(dim=1)
        gold = (float(self.gold_fn(ro.examples, ro.responses).float().mean())
                if self.gold_fn else float("nan"))
        return {
            "step": self.steps_done + 1,
            "proxy": float(ro.proxy.mean()),
            "gold": gold,
            "kl": float(kl.mean()),
            "entropy": float(masked_mean(ro.entropy, mask)),
            "length": float(mask.sum(dim=1).mean()),
            "finished": float(ro.finished.float().mean()),
            "clip_fraction": sum(clip_fracs) / len(clip_fracs),
            "policy_loss": sum(policy_losses) / len(policy_losses),
            "value_loss": sum(value_losses) / len(value_losses),
        }

    def fit(self, steps: int | None = None) -> PPOHistory:
        """Run ``steps`` more PPO steps (default: up to ``config.steps`` in all)."""
        todo = self.config.steps - self.steps_done if steps is None else steps
        for _ in range(max(0, todo)):
            self.step()
        return self.history


# --- evaluation ------------------------------------------------------------------------
@torch.no_grad()
def evaluate_policy(policy: GPT, reference: GPT, tokenizer: Tokenizer,
                    examples: Sequence[Example], reward_fn: RewardFn,
                    gold_fn: RewardFn | None = None, samples: int = 2, max_new_tokens: int = 16,
                    temperature: float = 1.0, seed: int = 0, batch_size: int = 256) -> dict:
    """Sampled responses to ``examples`` scored like during training, averaged.

    Returns {"proxy", "gold", "kl" (nats per response, k1), "length" (tokens),
    "finished", "responses"} with ``samples`` responses per example (the
    responses of the first sample, for inspection).
    """
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    gold_fn = gold_fn or gold_scorer()
    totals = {"proxy": 0.0, "gold": 0.0, "kl": 0.0, "length": 0.0, "finished": 0.0}
    n, first = 0, []
    for k in range(samples):
        gen = torch.Generator().manual_seed(seed * 1000 + k)
        for i in range(0, len(examples), batch_size):
            chunk = list(examples[i : i + batch_size])
            ids, attn, P, rmask, finished, texts = sample_responses(
                policy, tokenizer, chunk, max_new_tokens, temperature, gen)
            logp, _ = response_logprobs_and_entropy(policy, ids, attn, P, temperature)
            ref_logp, _ = response_logprobs_and_entropy(reference, ids, attn, P, temperature)
            m = rmask.float()
            totals["kl"] += float(((logp - ref_logp) * m).sum())
            totals["length"] += float(m.sum())
            totals["finished"] += float(finished.float().sum())
            totals["proxy"] += float(torch.as_tensor(reward_fn(chunk, texts)).sum())
            totals["gold"] += float(torch.as_tensor(gold_fn(chunk, texts)).sum())
            n += len(chunk)
            if k == 0:
                first += texts
    out = {key: value / n for key, value in totals.items()}
    out["responses"] = first
    return out
