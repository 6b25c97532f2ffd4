"""A damaged zoo or tokenizer: every error names the file and the fix, and ``zoo verify``
checks every checkpoint, reports each problem and ends with a summary and an exit status.

Each test damages a copy of the assets in a temporary folder: the manifests and the
tokenizer are copied, the weights and the preference pairs linked (assets/ is never
touched).
"""

from __future__ import annotations

import shutil

import pytest

from llmtrain.course import checkpoints, cli, paths, recipes, shared_data, zoo


def _clear_caches():
    shared_data.course_tokenizer.cache_clear()
    shared_data._stored_pairs.cache_clear()


@pytest.fixture
def assets(tmp_path, monkeypatch):
    """A copy of assets/ in ``tmp_path`` that the course modules read instead."""
    zoo_dir, tok_dir = tmp_path / "zoo", tmp_path / "tokenizer"
    zoo_dir.mkdir()
    tok_dir.mkdir()
    for f in paths.ZOO_DIR.iterdir():
        if f.suffix == ".json":
            shutil.copy(f, zoo_dir / f.name)
        else:
            (zoo_dir / f.name).symlink_to(f.resolve())
    for f in paths.TOKENIZER_PATH.parent.iterdir():
        shutil.copy(f, tok_dir / f.name)
    tokenizer = tok_dir / paths.TOKENIZER_PATH.name
    for module in (checkpoints, shared_data, zoo):
        monkeypatch.setattr(module, "ZOO_DIR", zoo_dir)
    for module in (shared_data, zoo):
        monkeypatch.setattr(module, "TOKENIZER_PATH", tokenizer)
    _clear_caches()
    yield tmp_path
    _clear_caches()


def truncate(path):
    data = path.read_bytes()
    path.unlink()                     # a linked file: replace the link, not its target
    path.write_bytes(data[: len(data) // 2])


def test_a_truncated_manifest_names_the_file_and_the_fix(assets):
    truncate(assets / "zoo" / "sft.json")
    with pytest.raises(ValueError) as err:
        checkpoints.manifest("sft")
    text = str(err.value)
    assert str(assets / "zoo" / "sft.json") in text and "not valid JSON" in text
    assert "git checkout -- assets/zoo/sft.json" in text
    assert "python -m llmtrain zoo build sft" in text
    assert text.index("git checkout") < text.index("zoo build"), "restoring from git comes first"


def test_a_missing_or_unreadable_manifest_names_the_file_and_the_fix(assets):
    path = assets / "zoo" / "base.json"
    path.unlink()
    with pytest.raises(FileNotFoundError, match="base.json is missing") as err:
        checkpoints.manifest("base")
    assert "git checkout -- assets/zoo/base.json" in str(err.value)
    path.mkdir()                      # unreadable as a file, for root too
    with pytest.raises(ValueError, match="base.json cannot be read") as err:
        checkpoints.manifest("base")
    assert "git checkout -- assets/zoo/base.json" in str(err.value)


def test_a_manifest_that_is_json_but_not_a_manifest_is_refused(assets):
    (assets / "zoo" / "dpo.json").write_text('{"name": "dpo"}\n')
    with pytest.raises(ValueError, match="dpo.json is not a checkpoint manifest") as err:
        checkpoints.manifest("dpo")
    assert "git checkout -- assets/zoo/dpo.json" in str(err.value)


def test_missing_or_changed_weights_say_restore_from_git_first(assets):
    weights = assets / "zoo" / "ppo.safetensors"
    weights.unlink()
    with pytest.raises(FileNotFoundError) as err:
        checkpoints.load("ppo")
    text = str(err.value)
    assert "git checkout -- assets/zoo/ppo.safetensors" in text
    assert text.index("git checkout") < text.index("zoo build ppo")
    weights.write_bytes(b"not weights")
    with pytest.raises(ValueError, match="does not match its manifest") as err:
        checkpoints.load("ppo")
    assert "git checkout -- assets/zoo/ppo.safetensors" in str(err.value)


@pytest.mark.parametrize("damage", ["missing", "truncated", "sidecar truncated"])
def test_a_damaged_tokenizer_names_the_file_and_the_fix(assets, damage):
    tok_dir = assets / "tokenizer"
    ranks, sidecar = tok_dir / "course.tiktoken", tok_dir / "course.tiktoken.json"
    if damage == "missing":
        ranks.unlink()
    else:
        truncate(ranks if damage == "truncated" else sidecar)
    with pytest.raises((OSError, ValueError)) as err:
        shared_data.course_tokenizer()
    text = str(err.value)
    assert str(ranks if damage != "sidecar truncated" else sidecar) in text
    assert "git checkout -- assets/tokenizer" in text
    assert "re-save" not in text, "re-saving a damaged tokenizer is not a fix"
    assert text.index("git checkout") < text.index("zoo build --tokenizer")


def test_damaged_preference_pairs_say_restore_from_git(assets):
    truncate(assets / "zoo" / "reward.pairs.json.gz")
    with pytest.raises(ValueError, match="reward.pairs.json.gz is damaged") as err:
        shared_data.preference_data("reward")
    assert "git checkout -- assets/zoo/reward.pairs.json.gz" in str(err.value)
    assert "zoo build reward" not in str(err.value), "retraining the reward model is not needed"


def _verify(capsys, *args):
    code = cli.main(["zoo", "verify", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _status(out: str, name: str) -> str:
    """The status ``zoo verify`` printed for ``name`` ("OK", "PROBLEMS", or "files OK, not
    compared..." while the tokenizer does not load), "" if none."""
    for line in out.splitlines():
        status = line.removeprefix(f"{name}: ")
        if status != line and status.startswith(("OK", "PROBLEMS", "files OK")):
            return status
    return ""


def test_zoo_verify_checks_every_checkpoint_and_reports_every_problem(assets, capsys):
    truncate(assets / "zoo" / "sft.json")
    (assets / "zoo" / "base-fixed.json").unlink()
    (assets / "zoo" / "ppo-nokl.safetensors").unlink()
    code, out, err = _verify(capsys)
    assert code == 1
    for name in recipes.RECIPES:
        assert _status(out, name), f"{name} was not checked"
    for name in ("sft", "base-fixed", "ppo-nokl"):
        assert _status(out, name) == "PROBLEMS"
    for name in ("base", "crawl-raw", "ppo", "dpo-online"):
        assert _status(out, name) == "OK"
    assert str(assets / "zoo" / "sft.json") in out and "git checkout -- assets/zoo/sft.json" in out
    assert "git checkout -- assets/zoo/base-fixed.json" in out
    assert "git checkout -- assets/zoo/ppo-nokl.safetensors" in out
    assert "Traceback" not in out + err
    summary = out.rstrip().splitlines()[-1]
    assert summary.startswith("zoo verify:") and "problems" in summary, "a summary comes last"
    assert all(name in summary for name in ("sft", "base-fixed", "ppo-nokl"))


def test_zoo_verify_reports_a_damaged_tokenizer_once_and_checks_the_rest(assets, capsys):
    truncate(assets / "tokenizer" / "course.tiktoken")
    (assets / "zoo" / "dpo.safetensors").unlink()
    code, out, err = _verify(capsys)
    assert code == 1
    assert _status(out, "tokenizer") == "PROBLEMS"
    assert out.count("git checkout -- assets/tokenizer") == 1, "said once, not per checkpoint"
    for name in recipes.RECIPES:
        assert _status(out, name), f"{name} was not checked"
    assert _status(out, "base").startswith("files OK, not compared with the code")
    assert _status(out, "dpo") == "PROBLEMS"
    assert "git checkout -- assets/zoo/dpo.safetensors" in out, "the weights are still checked"
    summary = out.rstrip().splitlines()[-1]
    assert f"the tokenizer and 1 of {len(recipes.RECIPES)} checkpoints (dpo)" in summary
    assert "run it again" in summary
    assert "Traceback" not in out + err


def test_zoo_verify_on_an_intact_copy_says_ok_and_exits_0(assets, capsys):
    code, out, err = _verify(capsys)
    assert code == 0, out + err
    assert "PROBLEMS" not in out and _status(out, "tokenizer") == "OK"
    assert out.rstrip().splitlines()[-1] == (
        f"zoo verify: the tokenizer and all {len(recipes.RECIPES)} checkpoints are OK")
