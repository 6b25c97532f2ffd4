"""Losses as pure functions: tensors in, a tensor out, shapes in the docstring.

Trainers receive a loss function; they never choose between losses with
``if`` chains. Later chapters add their objectives here (Bradley-Terry, DPO,
PPO, distillation) in the same style.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100  # label value for positions that do not count in the loss


def next_token_loss(
    logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """Mean cross-entropy of the next-token predictions, in nats.

    logits: (B, T, V) scores for the token after each position.
    targets: (B, T) the true next tokens; ``ignore_index`` marks positions to skip.
    Returns a scalar: the average of -ln p(true token) over counted positions.
    """
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(),
        targets.reshape(-1),
        ignore_index=ignore_index,
    )


def surprise(p_true: float | torch.Tensor, unit: str = "nats"):
    """The loss at one position: -log p of the true token, in nats or bits."""
    if unit not in ("nats", "bits"):
        raise ValueError(f"unit must be 'nats' or 'bits', got {unit!r}")
    p = torch.as_tensor(p_true, dtype=torch.float64)
    if bool(((p <= 0) | (p > 1)).any()):
        raise ValueError("a probability must be in (0, 1]")
    nats = -torch.log(p)
    out = nats / math.log(2) if unit == "bits" else nats
    return float(out) if out.ndim == 0 else out


def nats_to_bits(nats: float) -> float:
    """1 nat = 1/ln 2 = 1.4427 bits."""
    return nats / math.log(2)


def perplexity(loss_nats: float) -> float:
    """exp(loss): the number of equally likely tokens the model is as unsure as."""
    return math.exp(loss_nats)


def uniform_loss(vocab_size: int) -> float:
    """Loss of a model that spreads probability evenly over ``vocab_size`` tokens: ln V."""
    return math.log(vocab_size)


def bradley_terry_loss(
    chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor
) -> torch.Tensor:
    """The reward model's loss on preference pairs, in nats.

    chosen_rewards, rejected_rewards: (B,) scalar rewards of the preferred
    and the other response of each pair. The Bradley-Terry model says
    P(chosen preferred) = sigmoid(r_chosen - r_rejected); the loss is the
    mean of -ln of that probability over the B pairs. It is ln 2 = 0.693
    when the rewards are equal (a coin flip), falls towards 0 as the margin
    grows, and grows about linearly with a wrong-way margin.

    ``F.logsigmoid`` computes ln sigmoid(x) without overflow, so margins of
    +-1000 are fine (``torch.log(torch.sigmoid(x))`` would give -inf).
    """
    for name, t in (("chosen_rewards", chosen_rewards), ("rejected_rewards", rejected_rewards)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a tensor, got {type(t).__name__}")
        if t.ndim != 1 or t.numel() == 0:
            raise ValueError(
                f"{name} must have shape (B,) with B >= 1 (one reward per pair), got "
                f"{tuple(t.shape)}: squeeze a trailing 1 with .squeeze(-1)"
            )
    if chosen_rewards.shape != rejected_rewards.shape:
        raise ValueError(
            f"chosen_rewards {tuple(chosen_rewards.shape)} and rejected_rewards "
            f"{tuple(rejected_rewards.shape)} must have the same shape: one of each per pair"
        )
    margin = chosen_rewards.float() - rejected_rewards.float()
    return -F.logsigmoid(margin).mean()


def preference_probability(margin: float | torch.Tensor):
    """P(A preferred to B) = sigmoid(r_A - r_B) under Bradley-Terry; ``margin`` = r_A - r_B.

    A margin of 0 gives 0.5; 1 gives 0.73; 3 gives 0.95. A float in gives a
    float out; a tensor in gives a tensor of the same shape.
    """
    if isinstance(margin, torch.Tensor):
        return torch.sigmoid(margin)
    return 1.0 / (1.0 + math.exp(-margin)) if margin >= 0 else math.exp(margin) / (
        1.0 + math.exp(margin))


# --- reinforcement learning from preferences (chapters 08-09) -----------------------
def _check_same_shape(**tensors: torch.Tensor) -> None:
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"these tensors must have one shape, got {shapes}")


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over the positions where ``mask`` is 1 (a scalar; 0 if none are)."""
    _check_same_shape(x=x, mask=mask)
    mask = mask.to(x.dtype)
    return (x * mask).sum() / mask.sum().clamp(min=1)


def gae(rewards: torch.Tensor, values: torch.Tensor, gamma: float = 1.0, lam: float = 0.95,
        mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al., 2016): (advantages, returns).

    rewards, values: (B, T) per response token; ``values[:, t]`` estimates the
    return from token t on. mask: (B, T), 1 on response tokens (default: all).
    The value after the last response token is 0 (the episode ends there).

    delta_t = r_t + gamma * V_{t+1} - V_t, and A_t = sum_k (gamma * lam)^k delta_{t+k}.
    lam = 0 gives the one-step TD error; lam = 1 gives the discounted return
    minus V_t. returns = advantages + values (the value head's targets).
    Positions outside the mask get advantage 0 and are skipped in the sums.
    """
    _check_same_shape(rewards=rewards, values=values)
    if not (0 <= gamma <= 1 and 0 <= lam <= 1):
        raise ValueError(f"gamma and lam must be in [0, 1], got {gamma} and {lam}")
    mask = torch.ones_like(rewards) if mask is None else mask.to(rewards.dtype)
    _check_same_shape(rewards=rewards, mask=mask)
    rewards, values = rewards.float() * mask, values.float() * mask
    advantages = torch.zeros_like(rewards)
    next_value = torch.zeros(rewards.shape[0], dtype=rewards.dtype, device=rewards.device)
    running = torch.zeros_like(next_value)
    for t in reversed(range(rewards.shape[1])):
        m = mask[:, t]
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = torch.where(m > 0, delta + gamma * lam * running, running)
        advantages[:, t] = running * m
        next_value = torch.where(m > 0, values[:, t], next_value)
    return advantages, advantages + values


def ppo_policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor,
                    advantages: torch.Tensor, mask: torch.Tensor, clip_eps: float = 0.2
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped surrogate objective, as a loss to minimise: (loss, clip_fraction).

    All inputs (B, T) per response token. ratio = exp(logprobs - old_logprobs);
    loss = -mean over masked tokens of min(ratio * A, clip(ratio, 1 - eps, 1 + eps) * A).
    The clip removes the incentive to move a token's probability further than
    a factor 1 +- eps from the policy that sampled it. clip_fraction is the
    share of masked tokens where the clipped term was the smaller one.
    """
    _check_same_shape(logprobs=logprobs, old_logprobs=old_logprobs, advantages=advantages,
                      mask=mask)
    if not clip_eps > 0:
        raise ValueError(f"clip_eps must be > 0, got {clip_eps}")
    ratio = torch.exp(logprobs.float() - old_logprobs.float())
    unclipped = ratio * advantages
    clipped = ratio.clamp(1 - clip_eps, 1 + clip_eps) * advantages
    loss = -masked_mean(torch.minimum(unclipped, clipped), mask)
    clip_fraction = masked_mean((clipped < unclipped).float(), mask)
    return loss, clip_fraction.detach()


def group_advantages(rewards: torch.Tensor, scale: bool = True, eps: float = 1e-4
                     ) -> torch.Tensor:
    """GRPO's group-relative advantages (Shao et al., 2024): (n_prompts, group_size) -> same.

    Each row holds the rewards of ``group_size`` responses sampled for one
    prompt. A response's advantage is its reward minus its row's mean: better
    than its siblings is pushed up, worse is pushed down, and the group's own
    mean stands in for PPO's critic. With ``scale`` the result is divided by
    (the row's standard deviation + ``eps``), the standard deviation as
    ``torch.std`` computes it (with Bessel's correction, dividing by
    group_size - 1). A row where every response got the same reward has
    advantage 0 everywhere (no NaN): it carries no signal. ``scale=False`` is
    Dr. GRPO's choice (Liu et al., 2025), which keeps rows with a small spread
    from weighing more than the others.
    """
    if not isinstance(rewards, torch.Tensor):
        raise TypeError(f"rewards must be a tensor of shape (n_prompts, group_size), got "
                        f"{type(rewards).__name__}")
    if rewards.ndim != 2 or rewards.shape[0] < 1:
        raise ValueError(f"rewards must have shape (n_prompts, group_size), one row per prompt, "
                         f"got {tuple(rewards.shape)}: reshape a flat tensor with "
                         ".view(n_prompts, group_size)")
    if rewards.shape[1] < 2:
        raise ValueError(f"a group needs at least 2 responses to compare, got group_size="
                         f"{rewards.shape[1]} (shape {tuple(rewards.shape)})")
    if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a number > 0 (it keeps a group of equal rewards from "
                         f"dividing 0 by 0), got {eps!r}")
    rewards = rewards.float()
    if not bool(torch.isfinite(rewards).all()):
        raise ValueError("rewards must be finite numbers (found NaN or inf)")
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    if not scale:
        return centred
    return centred / (rewards.std(dim=1, keepdim=True) + eps)


def dpo_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
             ref_chosen_logps: torch.Tensor, ref_rejected_logps: torch.Tensor,
             beta: float = 0.1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Direct preference optimisation (Rafailov et al., 2023): (loss, chosen_rewards,
    rejected_rewards).

    Inputs (N,): each response's log-probability summed over its tokens, under
    the policy and under the frozen reference. The implicit reward of a
    response is beta * (log pi(y|x) - log pi_ref(y|x)); the loss is the
    Bradley-Terry loss of those rewards, -mean log sigmoid(r_chosen - r_rejected).
    When the policy equals the reference every reward is 0 and the loss is ln 2.
    The rewards are returned detached, for logging.
    """
    _check_same_shape(policy_chosen_logps=policy_chosen_logps,
                      policy_rejected_logps=policy_rejected_logps,
                      ref_chosen_logps=ref_chosen_logps, ref_rejected_logps=ref_rejected_logps)
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    chosen = beta * (policy_chosen_logps.float() - ref_chosen_logps.float())
    rejected = beta * (policy_rejected_logps.float() - ref_rejected_logps.float())
    loss = -F.logsigmoid(chosen - rejected).mean()
    return loss, chosen.detach(), rejected.detach()


def clipped_value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor,
                       mask: torch.Tensor, clip: float | None = 0.2) -> torch.Tensor:
    """The critic's loss in PPO: half the squared error to the returns, over masked tokens.

    All inputs (B, T). With ``clip``, the new value may not move more than
    ``clip`` away from ``old_values`` (the values at rollout time) for free:
    the loss is the larger of the clipped and the unclipped squared errors,
    the same pessimism as the policy's clipped objective. ``clip=None``: plain
    squared error.
    """
    _check_same_shape(values=values, old_values=old_values, returns=returns, mask=mask)
    error = (values.float() - returns.float()) ** 2
    if clip is not None:
        if not clip > 0:
            raise ValueError(f"clip must be > 0 or None, got {clip}")
        moved = old_values.float() + (values.float() - old_values.float()).clamp(-clip, clip)
        error = torch.maximum(error, (moved - returns.float()) ** 2)
    return 0.5 * masked_mean(error, mask)


def whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """(x - mean) / std over the masked entries (B, T); entries outside the mask become 0.

    PPO whitens the advantages of a batch so that half push a token up and
    half push it down, whatever the scale of the reward.
    """
    _check_same_shape(x=x, mask=mask)
    m = mask.to(x.dtype)
    mean = masked_mean(x, m)
    var = masked_mean((x - mean) ** 2, m)
    out = (x - mean) if shift_mean else x
    return out * torch.rsqrt(var + 1e-8) * m


def token_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of the next-token distribution at every position: (..., V) -> (...).

    H = -sum_v p(v) log p(v): 0 when the model is sure, ln V when it is uniform.
    """
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(dim=-1)


def kl_estimate(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, kind: str = "k1"
                ) -> torch.Tensor:
    """Per-token estimates of KL(policy || reference) from sampled tokens' log-probs.

    Inputs (B, T): log pi(token) and log pi_ref(token) for tokens sampled from
    the policy. "k1" is the log-ratio itself (unbiased, can be negative for one
    token); "k3" = (r - 1) - log r with r = pi_ref / pi (unbiased, never
    negative, lower variance). Summed over a response, either estimates the
    KL between the two models' distributions of whole responses.
    """
    _check_same_shape(logprobs=logprobs, ref_logprobs=ref_logprobs)
    log_ratio = logprobs.float() - ref_logprobs.float()
    if kind == "k1":
        return log_ratio
    if kind == "k3":
        return torch.expm1(-log_ratio) + log_ratio
    raise ValueError(f"kind must be 'k1' or 'k3', got {kind!r}")


# --- distillation (chapter 12) -------------------------------------------------------
def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                      targets: torch.Tensor | None, temperature: float = 2.0,
                      alpha: float = 0.5, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Knowledge distillation (Hinton et al., 2015), in nats per counted position.

    student_logits, teacher_logits: (..., V), e.g. (B, T, V), the same shape.
    targets: (...) the true next tokens, e.g. (B, T); ``ignore_index`` marks
    positions that count in neither term (padding). May be None when alpha = 1.

    loss = alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(student, targets)

    where x_T = softmax(logits / T). T > 1 flattens both distributions so the
    student also learns how the teacher ranks the unlikely tokens. At high T
    the soft term's gradients shrink as 1/T^2; the factor T^2 undoes that, so
    changing T does not silently change its weight. The cross-entropy uses
    the student at T = 1.
    alpha = 0 is plain training on hard labels; alpha = 1 uses the teacher only.
    The teacher gets no gradient.
    """
    if not isinstance(student_logits, torch.Tensor) or not isinstance(teacher_logits,
                                                                      torch.Tensor):
        raise TypeError("student_logits and teacher_logits must be tensors")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student_logits {tuple(student_logits.shape)} and teacher_logits "
            f"{tuple(teacher_logits.shape)} must have the same shape (..., V): the same "
            "positions and the same vocabulary (the same tokenizer)")
    if student_logits.ndim < 2:
        raise ValueError(f"logits must have shape (..., V), got {tuple(student_logits.shape)}")
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature)
            and temperature > 0):
        raise ValueError(f"temperature must be a number > 0, got {temperature!r}")
    if not (isinstance(alpha, (int, float)) and 0 <= alpha <= 1):
        raise ValueError(f"alpha must be in [0, 1] (the weight of the soft targets), got "
                         f"{alpha!r}")
    if targets is None:
        if alpha < 1:
            raise ValueError("targets are needed for the hard-label term when alpha < 1")
        keep = torch.ones(student_logits.shape[:-1], dtype=torch.bool,
                          device=student_logits.device)
    else:
        if tuple(targets.shape) != tuple(student_logits.shape[:-1]):
            raise ValueError(
                f"targets {tuple(targets.shape)} must have the logits' shape without the "
                f"vocabulary axis, {tuple(student_logits.shape[:-1])}")
        keep = targets != ignore_index
    V = student_logits.shape[-1]
    student = student_logits.reshape(-1, V).float()
    keep = keep.reshape(-1).float()
    count = keep.sum()
    if count == 0:  # every position is padding: nothing to learn, and no NaN
        return student.sum() * 0.0
    loss = student.new_zeros(())
    if alpha > 0:
        with torch.no_grad():  # the teacher's soft targets p_T and their entropy H(p_T)
            log_p = F.log_softmax(teacher_logits.reshape(-1, V).float() / temperature, dim=-1)
            p = log_p.exp()
            entropy = -(p * log_p).sum(-1)
        # KL(p || q) = cross-entropy(p, q) - H(p), per position; (N,)
        kl = F.cross_entropy(student / temperature, p, reduction="none") - entropy
        loss = loss + alpha * temperature**2 * (kl * keep).sum() / count
    if alpha < 1:
        ce = F.cross_entropy(student, targets.reshape(-1), ignore_index=ignore_index,
                             reduction="sum") / count
        loss = loss + (1 - alpha) * ce
    return loss
