"""Build the stored IsoFLOP sweep that chapter 04 fits and plots: assets/zoo/scaling-sweep.json.

Every width in WIDTHS (2 layers deep) is trained at every compute budget in BUDGETS on
D = C / (6 N) tokens of the base model's corpus (N = all parameters), with a full
warmup-and-cosine schedule per run, and its loss measured on the held-out biographies.
The smallest budget is repeated with two more seeds (widths 8 and up) to measure
seed-to-seed noise. Runs of fewer than 10 or more than 2,500 steps are skipped (see
``scaling.run_sweep``).
Takes about 10-15 minutes on one busy CPU core:

    python benchmarks/build_scaling_sweep.py            # writes assets/zoo/scaling-sweep.json
    python benchmarks/build_scaling_sweep.py --out /tmp/sweep.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from llmtrain.course import recipes, shared_data
from llmtrain.pretrain import scaling

BUDGETS = (6e10, 1.8e11, 5.4e11)        # FLOPs (6 N D)
WIDTHS = (4, 8, 12, 16, 24, 32, 48, 64, 96, 128)  # n_embd, all 2 layers deep
MAX_STEPS = 2500  # runs longer than this (the smallest models at the biggest budgets) are skipped
REPEAT_WIDTHS = WIDTHS[1:]  # retrained with seeds 1 and 2 at the smallest budget
TRAIN = dict(block_size=64, batch_size=16, lr=3e-3, eval_windows=96)
OUT = Path(__file__).resolve().parents[1] / "assets" / "zoo" / "scaling-sweep.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--widths", type=int, nargs="+", default=list(WIDTHS),
                    help="a subset of the widths (each run is independent and seeded, so the "
                         "runs of two subsets can be joined)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tok = shared_data.course_tokenizer()
    tokens = shared_data.encode_documents(tok, shared_data.corpus_documents(
        recipes.RECIPES["base"].corpus))
    heldout = shared_data.heldout_tokens()
    sweep = scaling.run_sweep(tokens, heldout, tok.vocab_size, BUDGETS, args.widths, n_layer=2,
                              seeds=(0,), repeat_budgets=(BUDGETS[0],), repeat_seeds=(1, 2),
                              repeat_widths=REPEAT_WIDTHS,
                              max_steps=MAX_STEPS, device="cpu", **TRAIN)
    sweep["corpus"] = "base model's corpus (recipes.RECIPES['base'].corpus); held-out biographies"
    sweep["built_with"] = {"torch": torch.__version__, "threads": args.threads,
                           "command": "python benchmarks/build_scaling_sweep.py"}
    args.out.write_text(json.dumps(sweep, indent=1) + "\n")
    print(f"wrote {args.out} ({len(sweep['runs'])} runs, {sweep['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
