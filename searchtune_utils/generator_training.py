"""Measuring and training the generator's answer-or-refuse decision (notebooks 03 and 04).

* :func:`decision_scores` — the decision read off the model directly: for each prompt, the
  log-probability of starting with the refusal minus that of starting with a citation (the
  first answer token: ``I`` of the refusal template, ``[`` of ``[Source N]``). One forward pass
  per prompt, no generation; its ROC AUC against "should refuse" (:func:`decision_auc`) says how
  well the model separates the two kinds of prompt, whatever threshold greedy decoding implies.
* :class:`DecisionAUCCallback` — that AUC on dev prompts every few optimiser steps, written into
  ``trainer.state.log_history`` as ``eval_decision_auc`` so the loss curve shows it: the loss
  averages over every answer token and cannot show whether the one that decides has been learned.
* :class:`DecisionWeightedSFTTrainer` — ``SFTTrainer`` with the loss of the first answer tokens
  (the decision and the source number) weighted up.
"""
from __future__ import annotations

from transformers import TrainerCallback
from trl import SFTTrainer

from .generation import REFUSAL, build_messages

__all__ = ["first_tokens", "decision_scores", "decision_auc", "DecisionAUCCallback", "DecisionWeightedSFTTrainer"]


def first_tokens(tokenizer) -> tuple[int, int]:
    """The token ids that open the two kinds of answer: ``(refusal, citation)`` — the first token
    of the refusal template and of ``[Source 1]``, as they follow the chat template's assistant
    opening."""
    ids = [tokenizer(text, add_special_tokens=False)["input_ids"][0] for text in (REFUSAL, "[Source 1]")]
    if ids[0] == ids[1]:
        raise ValueError("the refusal template and a citation start with the same token: the decision "
                         "cannot be read from the first answer token with this tokenizer")
    return ids[0], ids[1]


def decision_scores(model, tokenizer, records: list[dict], batch_size: int = 16, few_shot=False,
                    precision: str = "fp32") -> list[float]:
    """log p(refusal's first token) − log p(citation's first token) at the start of the answer,
    for each record's prompt (``few_shot`` as in ``generation.build_messages``: none, as in
    training, unless given). Higher = leans to refusing. ``precision="bf16"``: the forward pass
    under ``torch.autocast`` (``config.autocast``); the log-softmax is taken in fp32 either way."""
    import torch

    from .config import autocast

    refuse_id, cite_id = first_tokens(tokenizer)
    texts = [tokenizer.apply_chat_template(build_messages(r["question"], [p["text"] for p in r["passages"]], few_shot=few_shot),
                                           tokenize=False, add_generation_prompt=True) for r in records]
    side, was_training = tokenizer.padding_side, model.training
    tokenizer.padding_side = "left"  # the last position of every row is then the answer's first token
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    out = []
    model.eval()
    try:
        with torch.no_grad(), autocast(precision):
            for start in range(0, len(texts), batch_size):
                batch = tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True,
                                  add_special_tokens=False).to(model.device)
                logp = torch.log_softmax(model(**batch, logits_to_keep=1).logits[:, -1, :].float(), dim=-1)  # the last position only
                out += (logp[:, refuse_id] - logp[:, cite_id]).tolist()
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return out


def decision_auc(scores: list[float], records: list[dict], ci: bool = False, confidence: float = 0.95):
    """ROC AUC of ``scores`` (higher = refuse) against the records' right decision (refuse when
    not answerable): 0.5 = no separation, 1.0 = every refusal prompt scores above every answerable one
    (equal to ``sklearn.metrics.roc_auc_score``). With ``ci``: ``(auc, low, high)``, a percentile
    bootstrap over records (``scipy.stats.bootstrap``, 2,000 resamples; a resample with one class
    only counts as the full-sample AUC)."""
    from .metrics import auc_ci

    labels = [0 if r["answerable"] else 1 for r in records]
    return auc_ci(labels, scores, confidence if ci else None)


def decision_auc_difference(after: list[float], before: list[float], records: list[dict], confidence: float = 0.95) -> dict:
    """The decision AUC of ``after`` minus that of ``before`` (two systems' :func:`decision_scores` on
    the same ``records``), with a paired bootstrap interval (``metrics.auc_difference_ci``)."""
    from .metrics import auc_difference_ci

    return auc_difference_ci([0 if r["answerable"] else 1 for r in records], after, before, confidence)


class DecisionAUCCallback(TrainerCallback):
    """Dev decision AUC (:func:`decision_auc` of :func:`decision_scores`) at step 0 and every
    ``every`` optimiser steps, appended to ``state.log_history`` as ``{"step", "eval_decision_auc"}``
    (``plots.loss_curve`` draws it beside the loss) and kept in ``self.history``."""

    def __init__(self, tokenizer, records: list[dict], every: int = 25, batch_size: int = 16, precision: str = "fp32"):
        self.tokenizer, self.records, self.every, self.batch_size = tokenizer, records, every, batch_size
        self.precision = precision  # the dev probe runs in the training's precision
        self.history: list[dict] = []

    def _measure(self, model, state):
        scores = decision_scores(model, self.tokenizer, self.records, self.batch_size, precision=self.precision)
        auc = decision_auc(scores, self.records)
        entry = {"step": state.global_step, "eval_decision_auc": round(auc, 4)}
        self.history.append(entry)
        state.log_history.append(entry)

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self._measure(model, state)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.every == 0 or state.global_step == state.max_steps:
            self._measure(model, state)


class DecisionWeightedSFTTrainer(SFTTrainer):
    """``SFTTrainer`` whose loss weights the first ``weighted_tokens`` answer tokens by
    ``decision_weight`` (with a citation-first answer: the decision ``[``/``I`` and the source
    number). Everything else is TRL's; only the loss's average changes."""

    def __init__(self, *args, decision_weight: float = 5.0, weighted_tokens: int = 4, **kwargs):
        super().__init__(*args, **kwargs)
        self.decision_weight, self.weighted_tokens = decision_weight, weighted_tokens
        self.loss_is_scaled_for_ga = False  # the loss below is a per-batch mean: the trainer divides it by the accumulation steps

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        import torch

        labels = inputs["labels"]  # -100 on the prompt: the answer's tokens carry the loss
        outputs = model(**{k: v for k, v in inputs.items() if k not in ("labels", "completion_mask")}, use_cache=False)
        logits, target = outputs.logits[:, :-1, :].float(), labels[:, 1:]
        mask = target != -100
        token_loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.size(-1)), target.clamp(min=0).reshape(-1), reduction="none").view_as(target)
        position = mask.long().cumsum(dim=1)  # 1 for the first answer token, 2 for the second ...
        weight = torch.where(position <= self.weighted_tokens, self.decision_weight, 1.0) * mask
        loss = (token_loss * weight).sum() / weight.sum().clamp(min=1.0)
        return (loss, outputs) if return_outputs else loss
