"""A small GPT: the decoder-only transformer every chapter trains.

The architecture is GPT-2's (pre-LayerNorm blocks, learned position
embeddings, GELU MLP, output layer tied to the token embedding), written to
be read top to bottom. Tensor shapes are noted where they change:
B = batch, T = time (tokens), C = channels (n_embd), nh = heads, hs = head size.

Beyond training, the model supports what post-training needs:
* ``generate``: batched sampling with temperature, top-k, top-p, stop tokens
  and a key/value cache; prompts of different lengths are left-padded and
  described by an ``attention_mask`` (1 = real token, 0 = padding);
* ``token_logprobs``: the log-probability of every given next token, which is
  what SFT, DPO and PPO compute their losses from.

References: Radford et al. 2019 (GPT-2); Vaswani et al. 2017 (attention).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

KVCache = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: (k, v), each (B, nh, T_past, hs)


@dataclass(frozen=True)
class GPTConfig:
    """The shape of a GPT. All sizes are counts, not bytes."""

    vocab_size: int = 2048  # tokens the model can read and predict
    block_size: int = 128  # longest context, in tokens
    n_layer: int = 4  # transformer blocks
    n_head: int = 4  # attention heads per block
    n_embd: int = 128  # width of the residual stream
    dropout: float = 0.0  # dropout probability while training
    bias: bool = False  # biases in Linear and LayerNorm layers

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"GPTConfig.{name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(
                f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}): "
                "each head gets n_embd // n_head channels"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> GPTConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown GPTConfig fields {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)


# Named shapes, from what a laptop CPU trains in seconds to GPT-2's sizes.
# (n_layer, n_head, n_embd); vocab_size and block_size are set per use.
PRESETS: dict[str, dict] = {
    "nano": dict(n_layer=2, n_head=2, n_embd=64),
    "micro": dict(n_layer=3, n_head=3, n_embd=96),
    "tiny": dict(n_layer=4, n_head=4, n_embd=128),
    "small": dict(n_layer=6, n_head=6, n_embd=192),
    "medium": dict(n_layer=8, n_head=8, n_embd=256),
    "gpt2": dict(n_layer=12, n_head=12, n_embd=768, block_size=1024, vocab_size=50304),
    "gpt2-medium": dict(n_layer=24, n_head=16, n_embd=1024, block_size=1024, vocab_size=50304),
    "gpt2-large": dict(n_layer=36, n_head=20, n_embd=1280, block_size=1024, vocab_size=50304),
    "gpt2-xl": dict(n_layer=48, n_head=25, n_embd=1600, block_size=1024, vocab_size=50304),
}


def preset(name: str, **overrides) -> GPTConfig:
    """A named configuration, e.g. ``preset("tiny", vocab_size=2048)``."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {list(PRESETS)}")
    return GPTConfig(**{**PRESETS[name], **overrides})


class CausalSelfAttention(nn.Module):
    """Every position attends to itself and earlier positions, never later ones."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head = config.n_head
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x, mask=None, past=None):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        # (B, T, C) -> (B, nh, T, hs)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        if past is not None:
            k = torch.cat([past[0], k], dim=2)  # (B, nh, T_past + T, hs)
            v = torch.cat([past[1], v], dim=2)
        dropout = self.dropout if self.training else 0.0
        if mask is None:  # plain causal attention over a full, unpadded sequence
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout)
        else:  # mask: (B, 1, T, T_past + T), True where attention is allowed
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # re-assemble heads: (B, T, C)
        return self.resid_dropout(self.proj(y)), (k, v)


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    """x + attention(norm(x)), then x + mlp(norm(x)): the pre-LN residual block."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x, mask=None, past=None):
        a, present = self.attn(self.ln_1(x), mask, past)
        x = x + a
        x = x + self.mlp(self.ln_2(x))
        return x, present


class GPT(nn.Module):
    """Token ids in, next-token logits out: (B, T) -> (B, T, vocab_size)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)  # token embedding
        self.wpe = nn.Embedding(config.block_size, config.n_embd)  # position embedding
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying: one matrix reads and writes tokens
        self.apply(self._init_weights)
        # GPT-2: scale the init of layers that write into the residual stream by 1/sqrt(2 L)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self, non_embedding: bool = False) -> int:
        """Parameter count (the tied output layer counted once).

        ``non_embedding=True`` leaves out the token and position embeddings,
        the count that scaling laws use.
        """
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.wte.weight.numel() + self.wpe.weight.numel()
        return n

    def forward(
        self,
        idx: torch.Tensor,
        *,
        attention_mask: torch.Tensor | None = None,
        past_kv: KVCache | None = None,
        return_kv: bool = False,
    ):
        """Logits for the next token at every position.

        idx: (B, T) token ids. attention_mask: (B, T_past + T), 1 for real
        tokens and 0 for (left) padding; None means no padding. past_kv: the
        cache returned by an earlier call for the first T_past tokens.
        Returns logits (B, T, vocab_size), and the new cache if ``return_kv``.
        """
        x, presents = self._trunk(idx, attention_mask, past_kv)
        logits = self.lm_head(self.ln_f(x))  # (B, T, vocab_size)
        return (logits, presents) if return_kv else logits

    def hidden_states(
        self, idx: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The final hidden states (B, T, C): what the output layer reads.

        The same computation as ``forward`` without the last step (the
        projection onto the vocabulary), after the final LayerNorm. A reward
        model puts its own small head on top of these.
        """
        x, _ = self._trunk(idx, attention_mask, None)
        return self.ln_f(x)

    def _trunk(self, idx, attention_mask, past_kv):
        """Embeddings and every block: (B, T) ids -> residual stream (B, T, C) and the cache."""
        B, T = idx.shape
        T_past = 0 if past_kv is None else past_kv[0][0].shape[2]
        if T_past + T > self.config.block_size:
            raise ValueError(
                f"sequence of {T_past + T} tokens is longer than the model's context "
                f"(block_size={self.config.block_size}): shorten the input"
            )
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= self.config.vocab_size):
            raise ValueError(
                f"token ids must be in [0, {self.config.vocab_size}); got range "
                f"[{int(idx.min())}, {int(idx.max())}]: "
                "was the text encoded with another tokenizer?"
            )
        mask, pos = None, None
        if attention_mask is None:
            pos = torch.arange(T_past, T_past + T, device=idx.device).expand(B, T)
            # with a cache, the causal mask must be built by hand even for one new token:
            # scaled_dot_product_attention aligns is_causal top-left, so a 1 x (T_past + 1)
            # score matrix would let the new token see only the first key
            if T_past > 0:
                mask = _causal_mask(torch.ones(B, T_past + T, device=idx.device), T)
        else:
            attention_mask = attention_mask.to(idx.device)
            # positions count real tokens only, so left padding does not shift them
            pos = (attention_mask.long().cumsum(dim=1) - 1).clamp(min=0)[:, T_past:]
            mask = _causal_mask(attention_mask, T)
        x = self.drop(self.wte(idx) + self.wpe(pos))  # (B, T, C)
        presents = []
        for i, block in enumerate(self.blocks):
            x, present = block(x, mask, None if past_kv is None else past_kv[i])
            presents.append(present)
        return x, presents

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        stop_tokens: list[int] | tuple[int, ...] | None = None,
        attention_mask: torch.Tensor | None = None,
        pad_id: int = 0,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
    ) -> torch.Tensor:
        """Sample up to ``max_new_tokens`` after each prompt in ``idx`` (B, T).

        temperature 0 picks the most likely token (greedy). A sequence that
        emits one of ``stop_tokens`` keeps it and is then filled with
        ``pad_id``. Returns (B, T + n) with n <= max_new_tokens.
        With ``use_cache`` the keys and values of earlier tokens are kept, so
        each step only runs the newest token through the network.
        """
        _check_sampling(max_new_tokens, temperature, top_k, top_p)
        was_training = self.training
        self.eval()
        B, T = idx.shape
        if attention_mask is None:
            attention_mask = torch.ones_like(idx)
        attention_mask = attention_mask.to(idx.device)
        stop = torch.tensor(list(stop_tokens or []), device=idx.device, dtype=idx.dtype)
        done = torch.zeros(B, dtype=torch.bool, device=idx.device)
        fits = T + max_new_tokens <= self.config.block_size
        cache = None
        out = idx
        for _ in range(max_new_tokens):
            if use_cache and fits:
                step_in = out if cache is None else out[:, -1:]
                logits, cache = self(
                    step_in, attention_mask=attention_mask, past_kv=cache, return_kv=True
                )
            else:  # recompute everything, keeping at most block_size tokens of context
                ctx = out[:, -self.config.block_size :]
                logits = self(ctx, attention_mask=attention_mask[:, -self.config.block_size :])
            nxt = sample_next(logits[:, -1, :], temperature, top_k, top_p, generator)  # (B,)
            nxt = torch.where(done, torch.full_like(nxt, pad_id), nxt)
            out = torch.cat([out, nxt[:, None]], dim=1)
            attention_mask = torch.cat([attention_mask, (~done).long()[:, None]], dim=1)
            if len(stop):
                done = done | torch.isin(nxt, stop)
                if bool(done.all()):
                    break
        self.train(was_training)
        return out


def _causal_mask(attention_mask: torch.Tensor, T: int) -> torch.Tensor:
    """(B, T_total) padding mask -> (B, 1, T, T_total) boolean attention mask.

    Query i (the last T positions) may see key j when j <= i and j is not
    padding. A padded query row would see nothing at all, which makes
    attention return NaN, so it is allowed to see itself instead.
    """
    B, T_total = attention_mask.shape
    T_past = T_total - T
    q = torch.arange(T_past, T_total, device=attention_mask.device)[:, None]
    k = torch.arange(T_total, device=attention_mask.device)[None, :]
    allowed = (k <= q)[None] & attention_mask.bool()[:, None, :]  # (B, T, T_total)
    allowed = allowed | (k == q)[None]
    return allowed[:, None]


def _check_sampling(max_new_tokens, temperature, top_k, top_p):
    if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be a non-negative integer, got {max_new_tokens!r}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 means greedy), got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 or None, got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1] or None, got {top_p}")


def sample_next(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw one token per row from logits (B, V) -> (B,)."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        # drop a token when the tokens before it already cover top_p of the mass
        drop_sorted = (cum - sorted_logits.softmax(dim=-1)) >= top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    probs = logits.softmax(dim=-1)
    if generator is not None and generator.device != probs.device:
        return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(-1).to(probs.device)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def token_logprobs(
    model: GPT, idx: torch.Tensor, attention_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """log p(idx[:, t+1] | idx[:, :t+1]) for every t: (B, T) -> (B, T-1).

    Positions whose target is padding get 0. Sum a slice of this to get the
    log-probability of a whole response.
    """
    logits = model(idx, attention_mask=attention_mask)[:, :-1].float()  # (B, T-1, V)
    targets = idx[:, 1:]
    logp = torch.log_softmax(logits, dim=-1).gather(-1, targets[..., None]).squeeze(-1)
    if attention_mask is not None:
        logp = logp * attention_mask[:, 1:].to(logp.dtype)
    return logp

