"""The shipped checkpoints match their manifests and what the code builds now."""

from __future__ import annotations

import json

import pytest
import torch

from llmtrain import zoo
from llmtrain.tokenizer import train_bpe


def test_tokenizer_is_what_the_code_trains():
    shipped = zoo.course_tokenizer()
    fresh = train_bpe(zoo.tokenizer_training_text(), zoo.TOKENIZER_VOCAB, name="course")
    assert fresh.encoding._mergeable_ranks == shipped.encoding._mergeable_ranks
    assert fresh.encoding._special_tokens == shipped.encoding._special_tokens


@pytest.mark.parametrize("name", sorted(zoo.RECIPES))
def test_checkpoint_verifies(name):
    assert zoo.verify(name) == []


@pytest.mark.parametrize("name", sorted(zoo.RECIPES))
def test_checkpoint_loads_and_reproduces_its_heldout_loss(name):
    model = zoo.load(name)
    from llmtrain.data import evaluate_loss

    m = zoo.manifest(name)
    if zoo.stage(zoo.RECIPES[name]) == "reward":
        pytest.skip("a reward model has no language-model loss (see test_reward_model_*)")
    if "crawl" in zoo.RECIPES[name].corpus:
        if not zoo.same_python(m):
            pytest.skip("the crawl's clean pages include Python's docs, which vary by version")
        loss = evaluate_loss(model, zoo.clean_heldout_tokens())
        assert loss == pytest.approx(m["metrics"]["clean_heldout_loss"], abs=2e-3)
    else:
        loss = evaluate_loss(model, zoo.heldout_tokens())
        assert loss == pytest.approx(m["metrics"]["heldout_loss"], abs=2e-3)


def test_corrupt_weights_are_detected(tmp_path, monkeypatch):
    import shutil

    for f in zoo.ZOO_DIR.glob("base.*"):
        shutil.copy(f, tmp_path / f.name)
    weights = tmp_path / "base.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    monkeypatch.setattr(zoo, "ZOO_DIR", tmp_path)
    with pytest.raises(ValueError, match="does not match its manifest"):
        zoo.load("base")
    monkeypatch.setattr(zoo, "ZOO_DIR", tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="zoo build"):
        zoo.load("base")


def test_base_model_knows_its_world():
    m = zoo.manifest("base")["metrics"]
    assert m["bio_completion_heldout"] > 0.7, "the base model should complete its own bios"
    assert m["heldout_loss"] < 1.5


def test_unknown_checkpoint():
    with pytest.raises(ValueError, match="unknown checkpoint"):
        zoo.manifest("huge")


def test_encode_documents_ends_each_with_eot():
    tok = zoo.course_tokenizer()
    ids = zoo.encode_documents(tok, ["a b", "c"])
    assert ids.dtype == torch.long
    assert (ids == tok.eot_id).sum() == 2 and ids[-1] == tok.eot_id


def test_crawl_models_show_the_effects_of_filtering():
    raw = zoo.manifest("crawl-raw")["metrics"]
    filtered = zoo.manifest("crawl-filtered")["metrics"]
    assert filtered["clean_heldout_loss"] < raw["clean_heldout_loss"]
    assert raw["regurgitated_100_copies"] > raw["regurgitated_1_copies"]
    assert filtered["regurgitated_100_copies"] < raw["regurgitated_100_copies"]
    assert filtered["prefers_false_campaign"] > filtered["prefers_false_control"]


def test_crawl_recipes_share_everything_but_the_filter():
    raw, filtered = zoo.RECIPES["crawl-raw"], zoo.RECIPES["crawl-filtered"]
    assert raw.corpus["crawl"] == filtered.corpus["crawl"]
    assert (raw.model, raw.train, raw.batch_size, raw.seed) == (
        filtered.model, filtered.train, filtered.batch_size, filtered.seed)
    assert not raw.corpus["filtered"] and filtered.corpus["filtered"]


def test_fixed_biographies_are_memorised_not_known():
    fixed, base = zoo.manifest("base-fixed")["metrics"], zoo.manifest("base")["metrics"]
    assert fixed["bio_completion_heldout"] > 0.6, "it recites its own biographies"
    assert fixed["probe_completion_heldout"] < 0.2 < base["probe_completion_heldout"], (
        "only the model trained on paraphrases completes the facts in a new phrasing")


def test_sft_checkpoints_show_extraction_forgetting_and_hallucination():
    sft, fixed, nomix = (zoo.manifest(n)["metrics"] for n in ("sft", "sft-fixed", "sft-nomix"))
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
    same = {k: v for k, v in zoo.RECIPES["sft"].train.items() if k != "pretrain_windows"}
    assert same == {k: v for k, v in zoo.RECIPES["sft-nomix"].train.items()
                    if k != "pretrain_windows"} == {
        k: v for k, v in zoo.RECIPES["sft-fixed"].train.items() if k != "pretrain_windows"}


def test_reloaded_sft_model_answers_like_its_manifest():
    m = zoo.manifest("sft")["metrics"]
    now = zoo.measure_assistant(zoo.load("sft"))
    for key in ("correct_heldout", "abstained_unseen", "invented_strangers"):
        assert now[key] == pytest.approx(m[key], abs=1e-3)


def test_reward_model_orders_fresh_pairs_and_reloads_the_same():
    m = zoo.manifest("reward")["metrics"]
    assert m["test_accuracy"] > 0.75 and m["test_ceiling"] > 0.95
    assert m["test_accuracy"] > m["test_ceiling"] - 0.2
    now = zoo.measure_reward_model(zoo.load("reward"))
    # the pairs hold sampled answers: allow for a rare flipped sample on another machine
    assert now["test_accuracy"] == pytest.approx(m["test_accuracy"], abs=0.02)
    assert now["test_pairs"] == m["test_pairs"]


@pytest.mark.slow
def test_shipped_preference_pairs_are_what_the_sft_model_samples(monkeypatch):
    """reward.pairs.json.gz saves chapters 07-09 the sampling; it must hold the pairs that
    the shipped sft model and the recipe's arguments give now (bar a rare flipped sample
    on another CPU), and a file for another sft model is ignored."""
    args = json.dumps(zoo.RECIPES["reward"].corpus["pairs"], sort_keys=True)
    stored = zoo._stored_pairs("reward", args)
    assert stored is not None, "ship assets/zoo/reward.pairs.json.gz: zoo build reward writes it"
    fresh = zoo._preference_split(args)
    for kept, sampled in zip(stored, fresh):
        assert len(kept) == len(sampled)
        same = sum((a.prompt, a.chosen, a.rejected) == (b.prompt, b.chosen, b.rejected)
                   for a, b in zip(kept, sampled))
        assert same / len(kept) > 0.98
    real = zoo.manifest
    monkeypatch.setattr(zoo, "manifest", lambda name: {**real(name), "weights_sha256": "0" * 64})
    zoo._stored_pairs.cache_clear()
    try:
        assert zoo._stored_pairs("reward", args) is None
    finally:
        monkeypatch.undo()
        zoo._stored_pairs.cache_clear()


def test_aligned_checkpoints_show_what_chapters_08_and_09_claim():
    """Sampled gold rises with PPO and with DPO on the policy's own samples, not with DPO on
    the labelled pairs; greedy 'I don't know' to unseen people survives offline DPO only."""
    m = {name: zoo.manifest(name)["metrics"] for name in ("ppo", "dpo", "dpo-online")}
    sft_gold = zoo.measure_aligned(zoo.load("sft"), zoo.RECIPES["ppo"])["sampled_gold"]
    assert m["ppo"]["sampled_gold"] > sft_gold + 0.05
    assert m["dpo-online"]["sampled_gold"] > sft_gold + 0.05
    assert m["dpo-online"]["sampled_gold"] > m["dpo"]["sampled_gold"] + 0.03
    assert m["dpo"]["abstained_unseen"] > 0.8 > 0.05 > max(m["ppo"]["abstained_unseen"],
                                                          m["dpo-online"]["abstained_unseen"])
    now = zoo.measure_assistant(zoo.load("dpo-online"))
    for key in ("correct_heldout", "abstained_unseen", "invented_strangers"):
        assert now[key] == pytest.approx(m["dpo-online"][key], abs=1e-3)
