"""The shipped checkpoints match their manifests and what the code builds now."""

from __future__ import annotations

import json

import pytest
import torch

from llmtrain.core.tokenizer import train_bpe
from llmtrain.course import checkpoints, paths, recipes, shared_data, zoo


def test_tokenizer_is_what_the_code_trains():
    shipped = shared_data.course_tokenizer()
    fresh = train_bpe(shared_data.tokenizer_training_text(), recipes.TOKENIZER_VOCAB, name="course")
    assert fresh.encoding._mergeable_ranks == shipped.encoding._mergeable_ranks
    assert fresh.encoding._special_tokens == shipped.encoding._special_tokens


@pytest.mark.parametrize("name", sorted(recipes.RECIPES))
def test_checkpoint_verifies(name):
    assert zoo.verify(name) == []


@pytest.mark.parametrize("name", sorted(recipes.RECIPES))
def test_checkpoint_loads_and_reproduces_its_heldout_loss(name):
    model = checkpoints.load(name)
    from llmtrain.core.batches import evaluate_loss

    m = checkpoints.manifest(name)
    if recipes.stage(recipes.RECIPES[name]) == "reward":
        pytest.skip("a reward model has no language-model loss (see test_reward_model_*)")
    if "crawl" in recipes.RECIPES[name].corpus:
        if not zoo.same_python(m):
            pytest.skip("the crawl's clean pages include Python's docs, which vary by version")
        loss = evaluate_loss(model, shared_data.clean_heldout_tokens())
        assert loss == pytest.approx(m["metrics"]["clean_heldout_loss"], abs=2e-3)
    else:
        loss = evaluate_loss(model, shared_data.heldout_tokens())
        assert loss == pytest.approx(m["metrics"]["heldout_loss"], abs=2e-3)


def test_corrupt_weights_are_detected(tmp_path, monkeypatch):
    import shutil

    for f in paths.ZOO_DIR.glob("base.*"):
        shutil.copy(f, tmp_path / f.name)
    weights = tmp_path / "base.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    monkeypatch.setattr(checkpoints, "ZOO_DIR", tmp_path)
    with pytest.raises(ValueError, match="does not match its manifest"):
        checkpoints.load("base")
    monkeypatch.setattr(checkpoints, "ZOO_DIR", tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="zoo build"):
        checkpoints.load("base")


def test_base_model_knows_its_world():
    m = checkpoints.manifest("base")["metrics"]
    assert m["bio_completion_heldout"] > 0.7, "the base model should complete its own bios"
    assert m["heldout_loss"] < 1.5


def test_unknown_checkpoint():
    with pytest.raises(ValueError, match="unknown checkpoint"):
        checkpoints.manifest("huge")


def test_encode_documents_ends_each_with_eot():
    tok = shared_data.course_tokenizer()
    ids = shared_data.encode_documents(tok, ["a b", "c"])
    assert ids.dtype == torch.long
    assert (ids == tok.eot_id).sum() == 2 and ids[-1] == tok.eot_id


def test_crawl_models_show_the_effects_of_filtering():
    raw = checkpoints.manifest("crawl-raw")["metrics"]
    filtered = checkpoints.manifest("crawl-filtered")["metrics"]
    assert filtered["clean_heldout_loss"] < raw["clean_heldout_loss"]
    assert raw["regurgitated_100_copies"] > raw["regurgitated_1_copies"]
    assert filtered["regurgitated_100_copies"] < raw["regurgitated_100_copies"]
    assert filtered["prefers_false_campaign"] > filtered["prefers_false_control"]


def test_crawl_recipes_share_everything_but_the_filter():
    raw, filtered = recipes.RECIPES["crawl-raw"], recipes.RECIPES["crawl-filtered"]
    assert raw.corpus["crawl"] == filtered.corpus["crawl"]
    assert (raw.model, raw.train, raw.batch_size, raw.seed) == (
        filtered.model, filtered.train, filtered.batch_size, filtered.seed)
    assert not raw.corpus["filtered"] and filtered.corpus["filtered"]


def test_fixed_biographies_are_memorised_not_known():
    fixed, base = (checkpoints.manifest(n)["metrics"] for n in ("base-fixed", "base"))
    assert fixed["bio_completion_heldout"] > 0.6, "it recites its own biographies"
    assert fixed["probe_completion_heldout"] < 0.2 < base["probe_completion_heldout"], (
        "only the model trained on paraphrases completes the facts in a new phrasing")


def test_sft_checkpoints_show_extraction_forgetting_and_hallucination():
    sft, fixed, nomix = (checkpoints.manifest(n)["metrics"]
                         for n in ("sft", "sft-fixed", "sft-nomix"))
    assert sft["correct_sft"] > 0.9 and sft["answered_heldout"] > 0.9
    assert sft["correct_heldout"] > 0.6 > 0.4 > fixed["correct_heldout"], (
        "SFT extracts the facts of people it never saw questions about, from paraphrased "
        "pretraining only")
    assert sft["invented_strangers"] > 0.7, (
        "ordinary-named people described nowhere get confident inventions")
    assert sft["abstained_unseen"] > 0.8 > 0.05 > sft["abstained_strangers"], (
        "it abstains on the cue it was taught (an odd name), not on what it does not know")
    assert nomix["heldout_loss"] > 2 * sft["heldout_loss"], (
        "without pretraining text in the batches, SFT forgets how to write biographies")
    same = {k: v for k, v in recipes.RECIPES["sft"].train.items() if k != "pretrain_windows"}
    assert same == {k: v for k, v in recipes.RECIPES["sft-nomix"].train.items()
                    if k != "pretrain_windows"} == {
        k: v for k, v in recipes.RECIPES["sft-fixed"].train.items() if k != "pretrain_windows"}


def test_reloaded_sft_model_answers_like_its_manifest():
    m = checkpoints.manifest("sft")["metrics"]
    now = zoo.measure_assistant(checkpoints.load("sft"))
    for key in ("correct_heldout", "abstained_unseen", "invented_strangers"):
        assert now[key] == pytest.approx(m[key], abs=1e-3)


def test_reward_model_orders_fresh_pairs_and_reloads_the_same():
    m = checkpoints.manifest("reward")["metrics"]
    assert m["test_accuracy"] > 0.75 and m["test_ceiling"] > 0.95
    assert m["test_accuracy"] > m["test_ceiling"] - 0.2
    now = zoo.measure_reward_model(checkpoints.load("reward"))
    # the pairs hold sampled answers: allow for a rare flipped sample on another machine
    assert now["test_accuracy"] == pytest.approx(m["test_accuracy"], abs=0.02)
    assert now["test_pairs"] == m["test_pairs"]


@pytest.mark.slow
def test_shipped_preference_pairs_are_what_the_sft_model_samples(monkeypatch):
    """reward.pairs.json.gz saves chapters 07-09 the sampling; it must hold the pairs that
    the shipped sft model and the recipe's arguments give now (bar a rare flipped sample
    on another CPU), and a file for another sft model is ignored."""
    args = json.dumps(recipes.RECIPES["reward"].corpus["pairs"], sort_keys=True)
    stored = shared_data._stored_pairs("reward", args)
    assert stored is not None, "ship assets/zoo/reward.pairs.json.gz: zoo build reward writes it"
    fresh = shared_data._preference_split(args)
    for kept, sampled in zip(stored, fresh):
        assert len(kept) == len(sampled)
        same = sum((a.prompt, a.chosen, a.rejected) == (b.prompt, b.chosen, b.rejected)
                   for a, b in zip(kept, sampled))
        assert same / len(kept) > 0.98
    real = checkpoints.manifest
    monkeypatch.setattr(shared_data, "manifest",
                        lambda name: {**real(name), "weights_sha256": "0" * 64})
    shared_data._stored_pairs.cache_clear()
    try:
        assert shared_data._stored_pairs("reward", args) is None
    finally:
        monkeypatch.undo()
        shared_data._stored_pairs.cache_clear()


def test_aligned_checkpoints_show_what_chapters_08_and_09_claim():
    """Sampled gold rises with PPO and with DPO on the policy's own samples, not with DPO on
    the labelled pairs; greedy 'I don't know' to unseen people survives offline DPO only."""
    m = {name: checkpoints.manifest(name)["metrics"] for name in ("ppo", "dpo", "dpo-online")}
    sft_gold = zoo.measure_aligned(checkpoints.load("sft"), recipes.RECIPES["ppo"])["sampled_gold"]
    assert m["ppo"]["sampled_gold"] > sft_gold + 0.05
    assert m["dpo-online"]["sampled_gold"] > sft_gold + 0.05
    assert m["dpo-online"]["sampled_gold"] > m["dpo"]["sampled_gold"] + 0.03
    assert m["dpo"]["abstained_unseen"] > 0.8 > 0.05 > max(m["ppo"]["abstained_unseen"],
                                                          m["dpo-online"]["abstained_unseen"])
    now = zoo.measure_assistant(checkpoints.load("dpo-online"))
    for key in ("correct_heldout", "abstained_unseen", "invented_strangers"):
        assert now[key] == pytest.approx(m["dpo-online"][key], abs=1e-3)


def test_dpo_control_without_abstention_pairs():
    """The control of chapters 00 and 09: "dpo" on the same pairs less every pair with an
    'I don't know' answer loses the greedy abstention that "dpo" kept; neither samples it."""
    control, dpo = checkpoints.manifest("dpo-noabstain"), checkpoints.manifest("dpo")
    assert control["recipe"]["extra"]["drop_abstentions"] is True
    assert control["recipe"]["train"] == dpo["recipe"]["train"]
    c, d = control["metrics"], dpo["metrics"]
    assert d["abstained_unseen"] > 0.8 > 0.2 > c["abstained_unseen"]
    assert max(c["sampled_abstain_unseen"], d["sampled_abstain_unseen"]) < 0.1
