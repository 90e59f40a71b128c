"""Paired statistics, slice evaluation and the dataset-aware file names."""
import json
import platform

import numpy as np
import pandas as pd
import pytest

from searchtune_utils import config, metrics


def test_paired_test_finds_a_clear_gain_and_its_interval_excludes_zero():
    rng = np.random.default_rng(0)
    before = pd.Series(rng.uniform(0, 0.6, 200), index=[f"q{i}" for i in range(200)])
    after = before + 0.2 + rng.normal(0, 0.05, 200)
    t = metrics.paired_test(before, after)
    assert t["n"] == 200 and t["up"] > 190
    assert t["ci_low"] > 0.15 and t["ci_high"] < 0.25 and t["ci_low"] < t["delta"] < t["ci_high"]
    assert t["p_value"] < 0.001
    assert metrics.verdict(t) == "higher"


def test_paired_test_says_cant_tell_for_noise_and_pairs_by_query_id():
    rng = np.random.default_rng(1)
    ids = [f"q{i}" for i in range(100)]
    before = pd.Series(rng.uniform(0, 1, 100), index=ids)
    after = pd.Series(before.values[::-1], index=ids)  # same values, other queries: noise around 0
    t = metrics.paired_test(before, after)
    assert t["ci_low"] < 0 < t["ci_high"] and t["p_value"] > 0.05
    assert metrics.verdict(t) == "can't tell"
    # Series are aligned by query id, not by position.
    shuffled = after.sample(frac=1, random_state=0)
    assert metrics.paired_test(before, shuffled)["delta"] == pytest.approx(t["delta"])


def test_paired_test_identical_systems_and_bad_input():
    s = pd.Series([0.1, 0.5, 1.0], index=["a", "b", "c"])
    t = metrics.paired_test(s, s)
    assert t["delta"] == 0 and t["p_value"] == 1.0 and metrics.verdict(t) == "can't tell"
    with pytest.raises(ValueError, match="different queries"):
        metrics.paired_test(s, pd.Series([0.1, 0.2, 0.3], index=["a", "b", "x"]))
    with pytest.raises(ValueError, match="equal length"):
        metrics.paired_test([0.1, 0.2], [0.1, 0.2, 0.3])


def test_compare_paired_table():
    qrels = {f"q{i}": {"d1": 1} for i in range(30)}
    good = {q: {"d1": 1.0, "d2": 0.5} for q in qrels}
    bad = {q: {"d2": 1.0, "d1": 0.5} for q in qrels}
    per_query = {"bad": metrics.evaluate_run(qrels, bad, per_query=True),
                 "good": metrics.evaluate_run(qrels, good, per_query=True)}
    table = metrics.compare_paired(per_query, baseline="bad")
    assert table.loc["good", "Δ (pts)"] == pytest.approx(100 * (1 - 1 / np.log2(3)), abs=0.1)
    assert table.loc["good", "vs bad"] == "higher" and table.loc["good", "queries up / down"] == "30 / 0"
    assert table.loc["bad", "Δ (pts)"] == "" and table.loc["bad", "mean"] == pytest.approx(1 / np.log2(3), abs=1e-4)


def test_evaluate_slices_and_missing_field():
    qrels = {"a": {"d1": 1}, "b": {"d2": 1}}
    run = {"a": {"d1": 1.0}, "b": {"d1": 1.0}}
    table = metrics.evaluate_slices(qrels, {"sys": run}, {"a": {"slice": "x"}, "b": {"slice": "y"}},
                                    metrics=["nDCG@10"])
    assert table.loc[("x (1 q)", "sys"), "nDCG@10"] == 1.0 and table.loc[("y (1 q)", "sys"), "nDCG@10"] == 0.0
    assert metrics.evaluate_slices(qrels, {"sys": run}, {"a": {}, "b": {}}) is None


def test_dataset_aware_paths(monkeypatch):
    monkeypatch.delenv("SEARCHTUNE_DATASET", raising=False)
    assert config.results_path("01_x").name == "01_x.json"
    assert config.results_path("01_x", "smoke").name == "01_x.smoke.json"
    assert config.results_path("01_x", "cpu", "faqs").name == "01_x.faqs.json"
    assert config.results_path("01_x", "smoke", "some/dir/my data/").name == "01_x.my-data.smoke.json"
    assert config.artifact_dir("01_x", "model") == config.ARTIFACTS_DIR / "01_x" / "model"
    assert config.artifact_dir("01_x", "model", "smoke", "faqs") == config.ARTIFACTS_DIR / "smoke" / "01_x" / "faqs" / "model"
    assert config.get_dataset_name("", default="faqs") == "faqs"
    monkeypatch.setenv("SEARCHTUNE_DATASET", "tests/fixtures/foreign_beir")
    assert config.get_dataset_name("") == "tests/fixtures/foreign_beir"
    assert config.get_dataset_name("pydocs") == "pydocs"


def test_earlier_run_only_when_the_data_match(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "RESULTS_DIR", tmp_path)
    config.save_results("00_x", "cpu", {"BM25": {"nDCG@10": 0.5}}, dataset="faqs", precision="fp32",
                        sizes={"passages": 10, "test": 3}, per_query={"BM25": {"nDCG@10": {"q1": 1.0}}})
    hit = config.earlier_run("00_x", "cpu", "faqs", {"passages": 10, "test": 3}, "BM25")
    assert hit["metrics"] == {"nDCG@10": 0.5} and hit["source"] == "results/00_x.faqs.json"
    assert hit["per_query"] == {"nDCG@10": {"q1": 1.0}}
    assert config.earlier_run("00_x", "cpu", "faqs", {"passages": 11, "test": 3}, "BM25") is None
    assert config.earlier_run("00_x", "cpu", "pydocs", {"passages": 10, "test": 3}, "BM25") is None
    assert config.earlier_run("00_x", "cpu", "faqs", {"passages": 10, "test": 3}, "dense") is None


def test_progress_to_screen_drops_stderr_only_in_batch(monkeypatch, capsys):
    import sys

    monkeypatch.setenv("SEARCHTUNE_BATCH", "1")
    with config.progress_to_screen():
        print("summary")
        print("bar", file=sys.stderr)
    out = capsys.readouterr()
    assert out.out == "summary\n" and out.err == ""
    monkeypatch.setenv("SEARCHTUNE_BATCH", "0")
    with config.progress_to_screen():
        print("bar", file=sys.stderr)
    assert capsys.readouterr().err == "bar\n"


def test_precision_auto_follows_the_hardware_and_the_stage(monkeypatch, capsys):
    monkeypatch.delenv("SEARCHTUNE_PRECISION", raising=False)
    monkeypatch.setattr(config, "native_bf16", lambda: (True, "the CPU has AVX512-BF16"))
    assert config.get_precision("") == "bf16"
    assert "auto: the CPU has AVX512-BF16" in capsys.readouterr().out
    assert config.get_precision("auto", bf16_ok=False, why_not="its dev metric moved") == "fp32"
    assert "stays fp32: its dev metric moved" in capsys.readouterr().out
    assert config.get_precision("FP32") == "fp32"
    monkeypatch.setattr(config, "native_bf16", lambda: (False, "the CPU has neither AMX nor AVX512-BF16"))
    assert config.get_precision("") == "fp32"
    assert config.get_precision("bf16") == "bf16"  # asked for: emulated, but it runs
    monkeypatch.setenv("SEARCHTUNE_PRECISION", "bf16")
    assert config.get_precision("") == "bf16" and config.get_precision("fp32") == "fp32"  # the parameter wins
    monkeypatch.setenv("SEARCHTUNE_PRECISION", "half")
    with pytest.raises(ValueError, match="SEARCHTUNE_PRECISION.*auto, fp32, bf16"):
        config.get_precision("")


def test_native_bf16_reads_the_cpu_flags_torch_sees():
    import torch

    native, reason = config.native_bf16()
    if not torch.cuda.is_available() and platform.machine().lower() in ("x86_64", "amd64"):
        assert native == (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    assert isinstance(reason, str) and reason


def test_autocast_is_bf16_or_nothing():
    import torch

    with config.autocast("bf16"):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with config.autocast("fp32"):
        assert not torch.is_autocast_enabled("cpu")
    with pytest.raises(ValueError, match="get_precision"):
        config.autocast("auto")


def test_results_record_their_precision(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "RESULTS_DIR", tmp_path)
    path = config.save_results("00_x", "smoke", {}, precision="bf16")
    assert json.loads(path.read_text())["precision"] == "bf16"
    with pytest.raises(ValueError, match="precision must be"):
        config.save_results("00_x", "smoke", {})
