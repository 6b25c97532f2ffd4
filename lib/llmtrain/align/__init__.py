"""Post-training: from a base model to an assistant.

``sft`` (instruction data, fine-tuning, scorecards), ``preferences`` (pairs
labelled by the hidden judge), ``reward_model`` (Bradley-Terry reward models),
``bestofn``, ``ppo``, ``dpo``, ``constitution`` (a written rule set as the
judge), ``policy_runs`` (measuring a policy; the PPO and DPO runs of
chapters 08-09), ``reasoning`` (chain of thought on multi-digit sums) and ``grpo``
(reinforcement learning against a verifier, GRPO).

Used by chapters 00 and 06-09, 11, 14 and 16.
"""
