"""fp32 against bf16 autocast on *this* machine, one step of each kind of work the notebooks do.

A notebook's wall time depends on the machine as much as on the precision, so the only fair
comparison is both precisions on the same machine, alternated (A, B, A, B, ...) so that a busy
moment hits both, with the fastest of ``repeats`` runs kept. Each step is the notebooks' own shape:

* embedder training step (01, 07): all-MiniLM-L6-v2, MultipleNegativesRankingLoss, 32 pairs, length 128;
* reranker training step (02): MiniLM as a cross-encoder, 16 (question, passage) pairs, length 96;
* generator SFT step (03, 05): SmolLM2-135M with notebook 03's LoRA (r 16, every projection), 4 × 250 tokens;
* generator DPO step (04): the same policy on 2 pairs (4 × 250 tokens) plus the reference's forward pass;
* decision scores (03, 04, 06): a forward pass over 16 prompts of 250 tokens, last position only;
* generation (03–06): 16 prompts of 200 tokens, 40 new tokens, greedy;
* embedder encoding (00, 01, 08): 64 passages of 128 tokens (the notebooks encode in fp32).

Run ``python -m searchtune_utils.bench`` (about 5 minutes on 2 cores); it writes
``results/precision_bench.json``, which ``report.record_precision`` puts beside each notebook's runs.
"""
from __future__ import annotations

import json
import time

from .config import RESULTS_DIR, atomic_write_text, autocast, machine_info, native_bf16

BENCH_FILE = RESULTS_DIR / "precision_bench.json"


def _time(fn, repeats: int) -> dict[str, float]:
    fn("fp32"), fn("bf16")  # warm-up: first calls allocate and pick kernels
    best = {"fp32": float("inf"), "bf16": float("inf")}
    for _ in range(repeats):
        for precision in ("fp32", "bf16"):
            start = time.perf_counter()
            fn(precision)
            best[precision] = min(best[precision], time.perf_counter() - start)
    return {"fp32 (s)": round(best["fp32"], 3), "bf16 (s)": round(best["bf16"], 3),
            "speed-up": round(best["fp32"] / best["bf16"], 2)}


def steps() -> dict:
    """The steps to time: ``{name: function(precision)}``, models loaded once."""
    import torch
    from peft import LoraConfig, get_peft_model
    from sentence_transformers import CrossEncoder, SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from transformers import AutoModelForCausalLM

    from .models import resolve_model

    torch.manual_seed(0)
    minilm = resolve_model("minilm")
    embedder = SentenceTransformer(minilm, device="cpu")
    embedder.max_seq_length = 128
    mnrl = MultipleNegativesRankingLoss(embedder)
    words = "return the floor of x as an integral value for the given argument in this module".split()
    text = lambda n, i: " ".join(words[(i + j) % len(words)] for j in range(n))
    questions, passages = [text(12, i) for i in range(32)], [text(120, i) for i in range(32)]

    def embedder_step(precision):
        features = [embedder.tokenize(questions), embedder.tokenize(passages)]
        with autocast(precision):
            loss = mnrl(features, None)
        loss.backward()
        embedder.zero_grad()

    cross = CrossEncoder(minilm, num_labels=1, device="cpu", max_length=96)
    pairs = cross.tokenizer(questions[:16], passages[:16], truncation=True, max_length=96, padding=True, return_tensors="pt")

    def reranker_step(precision):
        with autocast(precision):
            logits = cross.model(**pairs).logits
        logits.float().sum().backward()
        cross.model.zero_grad()

    lm = AutoModelForCausalLM.from_pretrained(resolve_model("smollm2-135m-instruct"), dtype=torch.float32)
    lm = get_peft_model(lm, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, task_type="CAUSAL_LM",
                                       target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
    ids = torch.randint(100, 20000, (4, 250))

    def sft_step(precision):
        with autocast(precision):
            loss = lm(input_ids=ids, labels=ids).loss
        loss.backward()
        lm.zero_grad()

    def dpo_step(precision):
        with torch.no_grad(), lm.disable_adapter(), autocast(precision):
            lm(input_ids=ids)  # the reference's log-probabilities
        sft_step(precision)

    plain = AutoModelForCausalLM.from_pretrained(resolve_model("smollm2-135m-instruct"), dtype=torch.float32).eval()

    def decision_scores(precision):  # inference runs on merged models (no LoRA layers) in the notebooks
        with torch.no_grad(), autocast(precision):
            plain(input_ids=torch.randint(100, 20000, (16, 250)), logits_to_keep=1)

    prompts = torch.randint(100, 20000, (16, 200))

    def generation(precision):
        with torch.no_grad(), autocast(precision):
            plain.generate(input_ids=prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=40, min_new_tokens=40,
                        do_sample=False, pad_token_id=0)

    def encoding(precision):
        with torch.no_grad(), autocast(precision):
            embedder.encode(passages * 2, batch_size=64, convert_to_tensor=True)

    return {"embedder training step (01, 07)": embedder_step, "reranker training step (02)": reranker_step,
            "generator SFT step (03, 05)": sft_step, "generator DPO step (04)": dpo_step,
            "decision scores (03, 04, 06)": decision_scores, "generation, 40 new tokens (03-06)": generation,
            "embedder encoding (00, 01, 08; fp32 in the notebooks)": encoding}


def main(repeats: int = 3) -> dict:
    from .config import quiet_notebook

    quiet_notebook()
    native, reason = native_bf16()
    out = {"what": f"fp32 vs bf16 autocast on this machine, alternated, fastest of {repeats} after a warm-up",
           "date": time.strftime("%Y-%m-%d"), "machine": machine_info(), "native bf16": reason, "steps": {}}
    for name, fn in steps().items():
        out["steps"][name] = _time(fn, repeats)
        print(f"{name}: {out['steps'][name]}", flush=True)
    atomic_write_text(BENCH_FILE, json.dumps(out, indent=1) + "\n")
    if not native:
        print("note: no native bf16 on this machine: bf16 here is emulated, and `auto` would choose fp32")
    return out


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m searchtune_utils.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per precision and step (default 3)")
    main(parser.parse_args().repeats)
