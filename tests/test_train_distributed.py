"""searchtune_utils.train: notebook 01's embedder training in 2 processes (DDP on the CPU, gloo) vs 1.

The slow test launches the module twice on a tiny slice (smoke profile: 32 questions, 2 optimiser
steps of 16 rows), once plainly and once under `accelerate launch` with the shipped
`cpu_2proc.yaml`, at the same time (~40 s on 2 cores), and compares the two trained models. The
other tests cover the pure parts: reading the notebooks' parameters, splitting the batch, CLI errors.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from searchtune_utils import train

ROOT = Path(__file__).resolve().parent.parent
CPU_2PROC = train.ACCELERATE_CONFIGS / "cpu_2proc.yaml"


# --------------------------------------------------------------------------- parameters and batch sizes

def test_parameters_come_from_the_notebooks_parameters_cells():
    for notebook in (train.EMBEDDER_NOTEBOOK, train.GENERATOR_NOTEBOOK):
        params = train.notebook_parameters(notebook)
        assert set(params["PROFILES"]) == {"smoke", "workshop", "cpu", "gpu"} and isinstance(params["SEED"], int)
    smoke, seed = train.profile_parameters(train.EMBEDDER_NOTEBOOK, "smoke")
    assert seed == train.notebook_parameters(train.EMBEDDER_NOTEBOOK)["SEED"]
    assert {"batch_size", "embedder", "learning_rate", "max_queries"} <= set(smoke)
    gen, _ = train.profile_parameters(train.GENERATOR_NOTEBOOK, "smoke")
    assert {"batch_size", "grad_accum", "lora_r", "generator"} <= set(gen)  # COMMON merged in by the cell itself


def test_a_notebook_without_a_parameters_cell_is_named_in_the_error(tmp_path):
    nb = tmp_path / "99_no_tags.ipynb"
    nb.write_text(json.dumps({"cells": [{"cell_type": "code", "metadata": {}, "source": ["SEED = 1\n"]}]}))
    with pytest.raises(ValueError, match=r"99_no_tags\.ipynb: expected one code cell tagged 'parameters', found 0"):
        train.notebook_parameters(nb)
    with pytest.raises(FileNotFoundError, match="no_such_notebook.ipynb"):
        train.notebook_parameters("no_such_notebook")


def test_per_device_batch_keeps_the_effective_batch_or_says_why_not():
    assert [train.per_device_batch(16, n) for n in (1, 2, 4, 16)] == [16, 8, 4, 1]
    with pytest.raises(ValueError, match=r"batch_size=16 .*01_finetune_embeddings.*3 processes.*\(1, 2, 4, 8, 16\)"):
        train.per_device_batch(16, 3)


def test_gradient_accumulation_keeps_the_effective_batch_or_says_why_not():
    assert train.accumulation_steps(1, 4, 1) == (1, 4)   # notebook 03's smoke profile, one process
    assert train.accumulation_steps(1, 4, 2) == (1, 2)
    assert train.accumulation_steps(1, 4, 4) == (1, 1)
    assert train.accumulation_steps(1, 4, 2, per_device=2) == (2, 1)
    assert train.accumulation_steps(4, 1, 2) == (2, 1)  # notebook 03's cpu profile: the batch of 4 shared out
    assert train.accumulation_steps(4, 1, 1) == (4, 1)
    with pytest.raises(ValueError, match=r"1 x 4 = 4 .*03_finetune_generator_sft.*1 x 3.*launch with 1 or 2 or 4 process"):
        train.accumulation_steps(1, 4, 3)
    with pytest.raises(ValueError, match="1 x 1 = 1"):  # an effective batch of 1 cannot be shared
        train.accumulation_steps(1, 1, 2)


def test_world_comes_from_the_launcher_environment(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "PMI_SIZE", "PMI_RANK",
                 "MV2_COMM_WORLD_SIZE", "MV2_COMM_WORLD_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert train.world() == (1, 0)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    assert train.world() == (4, 3)


def test_the_device_split_sampler_cuts_the_one_process_batches():
    torch = pytest.importorskip("torch")
    from datasets import Dataset
    from sentence_transformers.base.sampler import NoDuplicatesBatchSampler

    # 41 rows sharing 9 passages (as rows share mined negatives): no-duplicates batches of 9, 9, 9, 9, 5.
    ds = Dataset.from_dict({"anchor": [f"q{i}" for i in range(41)], "positive": [f"p{i % 9}" for i in range(41)]})
    sampler = NoDuplicatesBatchSampler(ds, 16, drop_last=False, generator=torch.Generator(), seed=7)
    one = list(sampler)
    two = train._device_split_sampler_class()(ds, 8, drop_last=True, generator=torch.Generator(), seed=7, world=2)
    pieces = list(two)
    assert two.batch_size is None and len(two) == 2 * len(sampler)  # the trainer's steps per epoch: as in 1 process
    assert [a + b for a, b in zip(pieces[::2], pieces[1::2])] == [b[: len(b) // 2 * 2] for b in one if len(b) >= 2]
    assert [len(p) for p in pieces] == [4, 4] * 4 + [2, 2]  # equal halves; an odd batch loses its last row


def test_the_accelerate_configs_load_in_the_installed_accelerate():
    from accelerate.commands.config.config_args import load_config_from_file

    names = sorted(p.name for p in train.ACCELERATE_CONFIGS.glob("*.yaml"))
    assert names == ["1gpu.yaml", "cpu_2proc.yaml", "multi_gpu.yaml", "multi_node.yaml"]
    configs = {n: load_config_from_file(str(train.ACCELERATE_CONFIGS / n)) for n in names}  # unknown keys raise
    assert configs["cpu_2proc.yaml"].num_processes == 2 and configs["cpu_2proc.yaml"].use_cpu
    assert configs["multi_gpu.yaml"].num_processes == -1  # accelerate then insists on --num_processes
    assert configs["multi_node.yaml"].num_machines == 2 and configs["multi_node.yaml"].num_processes == 16
    assert all(c.mixed_precision == "no" for c in configs.values())  # train.py chooses the precision


# --------------------------------------------------------------------------- CLI errors

def test_cli_errors_name_the_file_and_the_fix(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    missing = tmp_path / "train.jsonl"
    assert train.main(["generator", "--profile", "smoke", "--data", str(missing)]) == 2
    err = capsys.readouterr().err
    assert "train.jsonl: no training records" in err and "Run notebooks/03_finetune_generator_sft.ipynb" in err
    assert "--data FILE" in err

    monkeypatch.setenv("WORLD_SIZE", "3")  # as if launched on 3 processes: 16 rows do not split
    assert train.main(["embedder", "--profile", "smoke", "--output", str(tmp_path / "m")]) == 2
    assert "cannot be split evenly over 3 processes" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()

    with pytest.raises(SystemExit) as exit_info:
        train.main(["embedder", "--profile", "huge"])
    assert exit_info.value.code == 2 and "invalid choice: 'huge'" in capsys.readouterr().err


# --------------------------------------------------------------------------- 2 processes vs 1

def _launch(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen, what: str) -> None:
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, f"{what} failed (exit {proc.returncode}):\n{out[-3000:]}"


def test_two_processes_train_the_embedder_like_one(tmp_path):
    """Same slice, same effective batch (16 = 1 x 16 = 2 x 8): both models load and score alike.

    The two runs are not bit-identical: dropout draws different masks for a batch of 16 than for
    two of 8, and a global batch the no-duplicates rule leaves odd-sized loses a row in 2
    processes. So the 2-process model must agree with the 1-process model much better than
    either agrees with the untrained model (ratio of mean |score differences| < 0.5; measured
    ~0.2) and within 0.05 cosine on every pair (measured max ~0.02). A 2-process run that did not
    train, or trained on a different batch schedule (e.g. 2 x 16 rows: one optimiser step, the
    warm-up one at learning rate 0), fails the ratio; one without the gathered negatives fails the
    model-card check (the card is written by sentence-transformers from the loss it trained with).
    """
    torch = pytest.importorskip("torch")
    from sentence_transformers import SentenceTransformer

    from searchtune_utils import data, retrieval
    from searchtune_utils.models import resolve_model

    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "TOKENIZERS_PARALLELISM": "false",
           "SEARCHTUNE_BATCH": "1", "PYTHONWARNINGS": "ignore"}
    common = ["-m", "searchtune_utils.train", "embedder", "--profile", "smoke", "--dataset", "pydocs"]
    one = _launch([*common, "--output", str(tmp_path / "one")], env)
    two = _launch(["-m", "accelerate.commands.launch", "--config_file", str(CPU_2PROC),
                   *common, "--output", str(tmp_path / "two")], env)
    _finish(one, "1-process run")
    _finish(two, "2-process run (accelerate launch, cpu_2proc.yaml)")

    summary = {n: json.loads((tmp_path / n / train.SUMMARY_FILE).read_text()) for n in ("one", "two")}
    assert (summary["one"]["processes"], summary["two"]["processes"]) == (1, 2)
    assert (summary["one"]["per_device_batch"], summary["two"]["per_device_batch"]) == (16, 8)
    assert summary["one"]["effective_batch"] == summary["two"]["effective_batch"] == 16
    assert summary["one"]["rows"] == summary["two"]["rows"] > 16  # same mined rows on both
    assert summary["one"]["steps"] == summary["two"]["steps"] >= 2
    assert '"gather_across_devices": true' in (tmp_path / "two" / "README.md").read_text()

    # Fixed (question, passage) pairs: the first 8 training questions of the slice x their answers.
    corpus, queries, qrels, _ = data.load_beir(data.get_dataset("pydocs"))
    params, seed = train.profile_parameters(train.EMBEDDER_NOTEBOOK, "smoke")
    corpus, queries, qrels = data.subsample(corpus, queries, qrels, params["max_queries"], params["max_corpus"], seed=seed)
    qids = sorted(qrels["train"])[:8]
    questions = [queries[q] for q in qids]
    passages = [retrieval.passage_text(corpus[next(iter(qrels["train"][q]))]) for q in qids]

    def scores(folder: str) -> "torch.Tensor":
        model = SentenceTransformer(folder, device="cpu")
        model.max_seq_length = params["max_seq_length"]
        with torch.no_grad():
            return model.similarity(model.encode_query(questions, convert_to_tensor=True),
                                    model.encode_document(passages, convert_to_tensor=True))

    base = scores(resolve_model(params["embedder"]))
    s1, s2 = scores(str(tmp_path / "one")), scores(str(tmp_path / "two"))
    moved = (s1 - base).abs().mean().item()
    assert moved > 0.005 and (s2 - base).abs().mean().item() > 0.005, "training did not move the scores"
    gap = (s2 - s1).abs()
    assert gap.mean().item() < 0.5 * moved, f"1 vs 2 processes: mean |diff| {gap.mean():.4f}, training moved {moved:.4f}"
    assert gap.max().item() < 0.05, f"1 vs 2 processes: max |diff| {gap.max():.4f}"
