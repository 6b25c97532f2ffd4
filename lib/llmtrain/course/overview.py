"""The whole pipeline on one page (chapter 00): one zoo checkpoint per training stage.

The course trains one tiny GPT through the stages a real assistant goes
through, and ships each stage's weights in the zoo:

    base (pretraining, ch. 04) -> sft (ch. 06) -> ppo (ch. 08) or dpo (ch. 09)

with the reward model (ch. 07) trained from sft to score answers for PPO.
This module loads them side by side, asks them the same questions, scores how
likely each finds a given answer, and sets what each stage cost here against
published runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..align.dpo import response_logprobs
from ..align.reward_model import encode_conversations
from ..align.sft import answer, raw_continuation
from ..core.model import GPT
from ..core.tokenizer import Tokenizer
from ..pretrain.scaling import REAL_RUNS, training_flops
from . import checkpoints, recipes

STAGES = ("base", "sft", "ppo", "dpo")   # the zoo's checkpoints, in training order
CHAPTER_OF = {"base": "04", "sft": "06", "reward": "07", "ppo": "08", "dpo": "09"}
WHAT_IT_LEARNED = {
    "base": "pretraining: predict the next token of the world's texts",
    "sft": "supervised fine-tuning: answer in the chat format",
    "reward": "a reward model: score answers like the labeller",
    "ppo": "RLHF with PPO: raise the reward model's score, near sft",
    "dpo": "DPO: prefer the labelled better answer, near sft",
}


def load_stages(device: str | torch.device = "cpu", names=STAGES) -> dict[str, GPT]:
    """The zoo's checkpoints of ``names`` (default: every stage), ready for inference."""
    unknown = [n for n in names if n not in recipes.RECIPES]
    if unknown:
        raise ValueError(f"no zoo checkpoint {unknown[0]!r}; choose from {sorted(recipes.RECIPES)}")
    return {name: checkpoints.load(name, device).eval() for name in names}


def side_by_side(models: dict[str, GPT], tokenizer: Tokenizer, questions: list[str],
                 max_new_tokens: int = 24) -> dict[str, list[str]]:
    """Each model's greedy answer to each question: {name: [answer, ...]}.

    The base model gets the bare question (it has never seen the chat template,
    so this is how it would be used: as a text completer); every later stage
    gets the question in the chat template.
    """
    if isinstance(questions, str):
        raise TypeError("questions must be a list of strings; wrap a single question in [ ]")
    out = {}
    for name, model in models.items():
        if name == "base":
            out[name] = raw_continuation(model, tokenizer, questions, max_new_tokens)
        else:
            out[name] = answer(model, tokenizer, questions, max_new_tokens)
    return out


@torch.no_grad()
def answer_logprob(model: GPT, tokenizer: Tokenizer, questions: list[str],
                   answers: list[str]) -> torch.Tensor:
    """log p(answer | question) under ``model`` in the chat format, summed over the answer's
    tokens and its closing ``<|end|>``: (N,) nats, one per (question, answer).

    ``exp`` of it is the probability that the model, sampling at temperature 1,
    writes exactly that answer.
    """
    if len(questions) != len(answers):
        raise ValueError(f"{len(questions)} questions but {len(answers)} answers")
    if not questions:
        return torch.zeros(0)

    device = next(model.parameters()).device
    ids, last = encode_conversations(tokenizer, list(questions), list(answers),
                                     model.config.block_size)
    was = model.training
    model.eval()
    logp = response_logprobs(model, ids.to(device), last.to(device), tokenizer.assistant_id)
    model.train(was)
    return logp.float().cpu()


@dataclass(frozen=True)
class StageCost:
    """What one stage cost here: from the checkpoint's manifest, written when it was built."""
    name: str
    parent: str | None
    n_params: int
    steps: int
    examples: int          # sequences (or pairs, or sampled answers) the stage trained on
    tokens: int            # tokens that went through the model in training
    seconds: float         # the build's wall time
    device: str
    flops: float           # 6 N D over those tokens

    @property
    def chapter(self) -> str:
        return CHAPTER_OF.get(self.name, "")


def stage_costs(names=("base", "sft", "reward", "ppo", "dpo")) -> list[StageCost]:
    """One ``StageCost`` per checkpoint, read from the zoo's manifests."""
    rows = []
    for name in names:
        m = checkpoints.manifest(name)
        train = m["recipe"]["train"]
        steps = int(train.get("steps", train.get("max_steps", 0)))
        batch = int(train.get("batch_size", m["recipe"].get("batch_size", 0)))
        tokens = int(m["data"]["tokens_trained"])
        rows.append(StageCost(name, m["recipe"]["model"].get("parent"), int(m["n_params"]),
                              steps, steps * batch, tokens, float(m["built_with"]["seconds"]),
                              m["built_with"]["device"], training_flops(m["n_params"], tokens)))
    return rows


def real_run(name: str = "Llama 3 405B"):
    """A published pretraining run from ``scaling.REAL_RUNS`` by name."""
    for run in REAL_RUNS:
        if run.name == name:
            return run
    raise ValueError(f"no run {name!r}; choose from {[r.name for r in REAL_RUNS]}")


@dataclass(frozen=True)
class PublishedStage:
    """The size of one training stage of a published model, as its paper reports it."""
    stage: str
    model: str
    data: str
    source: str


PUBLISHED_STAGES = (
    PublishedStage("pretraining", "Llama 3 405B",
                   "15.6 trillion tokens; up to 16,384 H100 GPUs, 30.84 million GPU-hours",
                   "Dubey et al. 2024"),
    PublishedStage("supervised fine-tuning", "InstructGPT",
                   "about 13,000 prompts with answers written by labellers", "Ouyang et al. 2022"),
    PublishedStage("supervised fine-tuning", "Llama 2-Chat",
                   "27,540 annotated conversations", "Touvron et al. 2023"),
    PublishedStage("reward model", "InstructGPT",
                   "about 33,000 prompts, 4 to 9 answers each ranked by labellers",
                   "Ouyang et al. 2022"),
    PublishedStage("reward model", "Llama 2-Chat",
                   "over 1.4 million human comparisons collected by Meta",
                   "Touvron et al. 2023"),
    PublishedStage("RLHF (PPO)", "InstructGPT", "about 31,000 prompts", "Ouyang et al. 2022"),
)
