"""Tests for searchtune_utils.models: offline-first model lookup and the SmolLM2 conversion.

The SmolLM2 conversion (~30-60 s on 2 CPUs) runs at most once, in the module-scoped
``smollm2_path`` fixture, into the default cache (a later run reuses it). Every other
conversion test replaces the slow step with a fake one.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from searchtune_utils import models
from searchtune_utils.models import (EMBEDDED, ModelNotAvailableError, first_available, resolve_model,
                                     smollm2_dir)

TMP_GLOB = f".{models.SMOLLM2}{models._TMP_TAG}*"


@pytest.fixture(scope="module")
def smollm2_path() -> Path:
    """The converted SmolLM2 folder in the default cache (converted here on the first run)."""
    return smollm2_dir()


@pytest.fixture
def empty_offline_hub(monkeypatch, tmp_path) -> Path:
    """HF_HUB_OFFLINE=1 with HF_HOME / HF_HUB_CACHE pointing at an empty folder."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    return tmp_path / "hf" / "hub"


def _fake_cache_entry(hub: Path, repo_id: str, filename: str = "config.json") -> Path:
    """Lay out ``repo_id`` in a hub cache the way huggingface_hub does; return the snapshot folder."""
    repo = hub / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (snapshot / filename).write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    return snapshot


# --------------------------------------------------------------------------- resolution


def test_minilm_names_and_alias_resolve_to_embedded_folder():
    paths = {resolve_model(n) for n in ("minilm", "MiniLM", EMBEDDED["minilm"])}
    assert len(paths) == 1
    path = Path(paths.pop())
    assert path.is_dir() and (path / "config.json").is_file() and (path / "modules.json").is_file()


def test_smollm2_names_and_alias_resolve_to_converted_folder(smollm2_path):
    for name in ("smollm2-135m-instruct", "HuggingFaceTB/SmolLM2-135M-Instruct", "huggingfacetb/smollm2-135m-instruct"):
        assert resolve_model(name) == str(smollm2_path)
    assert smollm2_path.is_dir()


def test_embedded_models_resolve_with_an_empty_offline_hub(empty_offline_hub, smollm2_path):
    for name, hub_id in EMBEDDED.items():
        assert Path(resolve_model(name)).is_dir()
        assert resolve_model(hub_id) == resolve_model(name)


def test_minilm_loads_and_encodes_384d():
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(resolve_model("minilm"), device="cpu")
    emb = model.encode(["how do I sort a list in python", "bm25 ranking"])
    assert emb.shape == (2, 384)


def test_offline_uncached_hub_id_raises_with_the_fix(empty_offline_hub):
    repo_id = "BAAI/bge-small-en-v1.5"
    with pytest.raises(ModelNotAvailableError) as info:
        resolve_model(repo_id)
    message = str(info.value)
    assert repo_id in message
    assert "offline" in message and "HF_HUB_OFFLINE" in message
    assert "`cpu`" in message and "`smoke`" in message and "local folder" in message
    assert f"hf download {repo_id}" in message and f"huggingface-cli download {repo_id}" in message


def test_transformers_offline_alone_also_counts_as_offline(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelNotAvailableError, match="org/not-cached"):
        resolve_model("org/not-cached")


def test_offline_cached_hub_id_resolves_to_snapshot(empty_offline_hub):
    snapshot = _fake_cache_entry(empty_offline_hub, "org/cached-model")
    assert resolve_model("org/cached-model") == str(snapshot)
    # a sentence-transformers repo is recognised by modules.json too
    st_snapshot = _fake_cache_entry(empty_offline_hub, "org/st-model", "modules.json")
    assert resolve_model("org/st-model") == str(st_snapshot)


def test_online_hub_id_is_returned_for_the_library_to_download(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    assert resolve_model("org/not-cached") == "org/not-cached"
    _fake_cache_entry(tmp_path, "org/cached-model")
    assert resolve_model("org/cached-model") == "org/cached-model"


def test_hub_cache_dir_follows_the_environment_now(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert models.hub_cache_dir() == tmp_path / "home" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "explicit"))
    assert models.hub_cache_dir() == tmp_path / "explicit"


def test_existing_local_folder_is_returned_as_is(tmp_path, monkeypatch):
    assert resolve_model(str(tmp_path)) == str(tmp_path)
    (tmp_path / "my-model").mkdir()
    monkeypatch.chdir(tmp_path)
    assert resolve_model("./my-model") == "./my-model"


def test_artifact_path_resolves_from_repo_root_when_cwd_is_elsewhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # like a notebook running in notebooks/
    assert resolve_model("searchtune_utils") == str(models.ROOT / "searchtune_utils")


def test_missing_artifact_folder_names_the_notebook_that_makes_it():
    with pytest.raises(ModelNotAvailableError) as info:
        resolve_model("artifacts/99_no_such_notebook/model")
    message = str(info.value)
    assert "does not exist" in message and "artifacts/99_no_such_notebook/model" in message
    assert "notebooks/99_no_such_notebook.ipynb" in message


@pytest.mark.parametrize("name", ["./no-such-model", "/no/such/model", "../no-such/dir/x"])
def test_missing_local_folder_raises(name):
    with pytest.raises(ModelNotAvailableError, match="does not exist"):
        resolve_model(name)


def test_invalid_name_raises_not_a_library_error(empty_offline_hub):
    with pytest.raises(ModelNotAvailableError, match="valid hub id"):
        resolve_model("not a model name!")


def test_first_available_falls_back_and_says_which():
    resolved, used = first_available("artifacts/99_no_such_notebook/model", "minilm")
    assert used == "minilm" and resolved == resolve_model("minilm")
    resolved, used = first_available("minilm", "artifacts/99_no_such_notebook/model")
    assert used == "minilm"


def test_first_available_lists_every_failure(empty_offline_hub):
    with pytest.raises(ModelNotAvailableError) as info:
        first_available("artifacts/99_no_such_notebook/model", "org/not-cached")
    assert "99_no_such_notebook" in str(info.value) and "org/not-cached" in str(info.value)


# --------------------------------------------------------------------------- converted SmolLM2


def test_converted_smollm2_folder_is_plain_safetensors(smollm2_path):
    files = {p.name for p in smollm2_path.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", models.COMPLETE_MARKER} <= files
    assert not any(f.endswith((".bin", ".gguf", ".pt")) for f in files)
    config = json.loads((smollm2_path / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["model_type"] == "llama" and config["tie_word_embeddings"] is True
    marker = json.loads((smollm2_path / models.COMPLETE_MARKER).read_text())
    assert marker["max_abs_logit_diff"] == 0.0  # checked against the GGUF model at conversion
    assert not list(smollm2_path.parent.glob(TMP_GLOB))


def test_converted_smollm2_tokenizer_keeps_chatml_template(smollm2_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smollm2_path)
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                   add_generation_prompt=True)
    assert "<|im_start|>user\nhi<|im_end|>" in text and text.endswith("<|im_start|>assistant\n")
    assert tok.eos_token == "<|im_end|>" and tok.model_max_length == 8192


def test_converted_weights_equal_dequantized_gguf_tensors(smollm2_path):
    """Independent of transformers' GGUF loader: de-quantize two tensors with the gguf package."""
    import gguf
    from safetensors import safe_open

    reader = gguf.GGUFReader(str(models.smollm2_gguf_path()))
    gguf_tensors = {t.name: t for t in reader.tensors}
    with safe_open(str(smollm2_path / "model.safetensors"), "np") as saved:
        for gguf_name, hf_name in [("token_embd.weight", "model.embed_tokens.weight"),
                                   ("blk.0.ffn_down.weight", "model.layers.0.mlp.down_proj.weight")]:
            t = gguf_tensors[gguf_name]
            expected = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
            assert np.array_equal(saved.get_tensor(hf_name), expected), hf_name


def test_converted_smollm2_reloads_and_generates(smollm2_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smollm2_path)
    model = AutoModelForCausalLM.from_pretrained(smollm2_path, dtype=torch.float32)
    assert getattr(model.config, "quantization_config", None) is None
    ids = tok.apply_chat_template([{"role": "user", "content": "Say hi."}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)["input_ids"]
    out = model.generate(ids, max_new_tokens=4, do_sample=False)
    assert out.shape[1] > ids.shape[1]


# --------------------------------------------------------------------------- atomic, idempotent conversion


def _fake_convert(gguf, out: Path) -> dict:
    (out / "model.safetensors").write_bytes(b"fake weights")
    (out / "config.json").write_text("{}")
    return {"fake": True}


def test_interrupted_conversion_leaves_nothing(monkeypatch, tmp_path):
    def interrupted(gguf, out: Path) -> dict:
        (out / "model.safetensors").write_bytes(b"half written")
        raise RuntimeError("disk full")

    monkeypatch.setattr(models, "_convert_smollm2", interrupted)
    with pytest.raises(RuntimeError, match="disk full"):
        smollm2_dir(tmp_path)
    models_dir = tmp_path / "models"
    assert not (models_dir / models.SMOLLM2).exists()
    assert not list(models_dir.glob(TMP_GLOB)), list(models_dir.iterdir())


def test_keyboard_interrupt_during_save_leaves_nothing(monkeypatch, tmp_path):
    def ctrl_c(model, tokenizer, out: Path) -> None:
        (out / "model.safetensors").write_bytes(b"half written")
        raise KeyboardInterrupt

    class Stub:  # what _convert_smollm2 would have loaded, minus the 20 s
        pass

    monkeypatch.setattr(models, "_save_smollm2", ctrl_c)
    monkeypatch.setattr(models, "_convert_smollm2",
                        lambda gguf, out: models._save_smollm2(Stub(), Stub(), out) or {})
    with pytest.raises(KeyboardInterrupt):
        smollm2_dir(tmp_path)
    assert list((tmp_path / "models").iterdir()) == []


def test_conversion_is_idempotent_and_marker_written_last(monkeypatch, tmp_path):
    calls = []

    def convert(gguf, out):
        calls.append(out)
        assert not (out / models.COMPLETE_MARKER).exists()
        return _fake_convert(gguf, out)

    monkeypatch.setattr(models, "_convert_smollm2", convert)
    first = smollm2_dir(tmp_path)
    assert first == tmp_path / "models" / models.SMOLLM2
    marker = json.loads((first / models.COMPLETE_MARKER).read_text())
    assert marker["fake"] is True and marker["hub_id"] == EMBEDDED[models.SMOLLM2]
    assert oct(first.stat().st_mode & 0o777) != oct(0o700)  # not left owner-only by mkdtemp
    assert smollm2_dir(tmp_path) == first and len(calls) == 1


def test_incomplete_target_and_stale_tmp_are_replaced(monkeypatch, tmp_path):
    target = tmp_path / "models" / models.SMOLLM2
    target.mkdir(parents=True)
    (target / "model.safetensors").write_bytes(b"from a crashed older run")
    stale = tmp_path / "models" / f".{models.SMOLLM2}{models._TMP_TAG}999999999-abc"
    stale.mkdir()
    monkeypatch.setattr(models, "_convert_smollm2", _fake_convert)
    assert smollm2_dir(tmp_path) == target
    assert (target / "model.safetensors").read_bytes() == b"fake weights"
    assert not stale.exists()


def test_searchtune_cache_env_moves_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("SEARCHTUNE_CACHE", str(tmp_path / "elsewhere"))
    monkeypatch.setattr(models, "_convert_smollm2", _fake_convert)
    assert models.cache_root() == tmp_path / "elsewhere"
    assert smollm2_dir() == tmp_path / "elsewhere" / "models" / models.SMOLLM2


def test_default_cache_is_git_ignored_repo_cache(monkeypatch):
    monkeypatch.delenv("SEARCHTUNE_CACHE", raising=False)
    assert models.cache_root() == models.ROOT / ".cache"
    assert ".cache/" in (models.ROOT / ".gitignore").read_text().splitlines()


def test_cli_usage(capsys):
    assert models.main([]) == 2
    assert "prepare" in capsys.readouterr().err
