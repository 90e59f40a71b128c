"""The generator contract: one prompt format, one citation syntax, one refusal, one scorer.

Notebooks 03 (SFT), 04 (DPO) and every later notebook that generates answers import this module,
so a model trained in one notebook is prompted, parsed and scored the same way in the next.

**Input.** A question plus the top-k passages the search stack returned, numbered
``[Source 1]`` .. ``[Source k]`` (:func:`build_messages`).

**Output.** Exactly one of:

* a short answer (at most :data:`MAX_ANSWER_WORDS` words) that cites the passages it used, each
  as ``[Source N]`` with ``1 <= N <= k`` — e.g. ``math.floor: Return the floor of x [Source 2].``
* the refusal template :data:`REFUSAL`, alone, when no passage answers the question.

:func:`parse_answer` checks an answer against that contract and :func:`score_answer` scores it
against a reference record (see ``data.GENERATION_FIELDS``); :func:`summarize` turns the scores
into the metrics table of the notebooks. The rest builds records from BEIR data
(:func:`build_datasets`), turns them into chat examples for TRL (:func:`chat_example`), generates
answers in batches (:func:`generate`) and makes controlled failures for preference pairs
(:data:`CORRUPTIONS`).
"""
from __future__ import annotations

import json
import random
import re
import time
from pathlib import Path

from .data import stable_hash
from .retrieval import passage_text

# --------------------------------------------------------------------------------- the contract
REFUSAL = "I cannot answer this from the provided sources."
CITATION = "[Source {n}]"
MAX_ANSWER_WORDS = 50

SYSTEM_PROMPT = (
    "You answer questions about Python's standard library using only the numbered sources in the "
    "user's message. Reply with one short sentence that names the function, class or exception that "
    "answers the question and says what it does, then cite the source you used, written exactly as "
    "[Source N]. If no source answers the question, reply exactly: " + REFUSAL
)

_EXACT = re.compile(r"\[Source (\d+)\]")
# Attempts to cite that are not the exact format: "(Source 2)", "[source 2]", "[2]", "Source 2:",
# "[Sources 1, 2]", "【Source 1】". Checked after the exact citations are removed.
_CITATION_LIKE = re.compile(
    r"[\[(【{]\s*(?:sources?|src|docs?|documents?|passages?|refs?)\s*#?\s*\d+(?:\s*(?:,|and|&)\s*\d+)*\s*[\])】}]"
    r"|(?<![\w\])])\[\s*\d+(?:\s*,\s*\d+)*\s*\]"
    r"|\bsources?\s*#?\s*\d+\b",
    re.IGNORECASE,
)

#: Worked examples shown to the model as earlier chat turns (the "few-shot" part of the prompt).
#: Made from training-split passages and an off-topic tool that is not in the dataset.
FEW_SHOT = [
    {"question": "how do I round a number down to an int?",
     "passages": ["math.ceil(x, /)\nReturn the ceiling of x as an Integral.",
                  "math.floor(x, /)\nReturn the floor of x as an Integral."],
     "answer": "math.floor: Return the floor of x as an Integral [Source 2]."},
    {"question": "How do I install a package with Homebrew on macOS?",
     "passages": ["os.getcwd()\nReturn a unicode string representing the current working directory."],
     "answer": REFUSAL},
]


def _norm(text: str) -> str:
    return " ".join(text.lower().split()).rstrip(" .!")


def truncate_words(text: str, max_words: int | None) -> str:
    """``text`` cut to its first ``max_words`` words (whitespace-separated), with " …" when cut.

    Line breaks inside the kept part are preserved; ``None`` keeps everything."""
    if not max_words:
        return text
    words = re.findall(r"\S+\s*", text)
    if len(words) <= max_words:
        return text
    return "".join(words[:max_words]).rstrip() + " …"


def format_sources(passages: list[str]) -> str:
    """Number passages for the prompt: ``[Source 1] <passage>`` blocks separated by a blank line."""
    return "\n\n".join(f"{CITATION.format(n=i)} {p}" for i, p in enumerate(passages, start=1))


def user_message(question: str, passages: list[str]) -> str:
    """The user turn: the numbered sources, then the question."""
    return f"{format_sources(passages)}\n\nQuestion: {question}"


def build_messages(question: str, passages: list[str], few_shot: bool | list[dict] = True,
                   system: str = SYSTEM_PROMPT) -> list[dict]:
    """The prompt as chat messages (no assistant turn at the end).

    In: the question, the passage texts in the order to number them, ``few_shot`` = True for the
    :data:`FEW_SHOT` examples as earlier user/assistant turns, False for none, or your own list of
    ``{"question", "passages", "answer"}`` examples; the system instruction.
    Out: ``[{"role": "system", ...}, ({"role": "user"}, {"role": "assistant"})*, {"role": "user", ...}]``,
    ready for ``tokenizer.apply_chat_template(..., add_generation_prompt=True)``.
    """
    messages = [{"role": "system", "content": system}]
    for ex in (FEW_SHOT if few_shot is True else few_shot or []):
        messages += [{"role": "user", "content": user_message(ex["question"], ex["passages"])},
                     {"role": "assistant", "content": ex["answer"]}]
    messages.append({"role": "user", "content": user_message(question, passages)})
    return messages


def answer_name(title: str) -> str:
    """The object name of a passage title: ``"abc.ABCMeta.register(cls, subclass)"`` -> ``"abc.ABCMeta.register"``."""
    return title.split("(")[0].split(" (part")[0].strip()


def reference_answer(title: str, summary: str, source: int) -> str:
    """The reference answer, made by rule: ``"<object name>: <summary sentence> [Source n]."``.

    Both parts are copied from the cited passage (its title and first sentence), so a reference
    answer says nothing its source does not say.
    """
    return f"{answer_name(title)}: {summary.strip().rstrip('.')} {CITATION.format(n=source)}."


# --------------------------------------------------------------------------------- parse and score
def parse_answer(text: str, n_sources: int, max_words: int = MAX_ANSWER_WORDS) -> dict:
    """Check one generated answer against the contract.

    In: the answer text, the number of sources the prompt showed, the word limit.
    Out: ``{"refusal", "citations", "body", "compliant", "problems"}`` —
    ``refusal``: the refusal template is present (case and final full stop ignored);
    ``citations``: the source numbers cited with the exact ``[Source N]`` syntax, in order, once each;
    ``body``: the answer without its citations; ``compliant``: the answer is either the refusal
    alone, or a non-empty answer of at most ``max_words`` words with at least one citation, every
    citation in the exact format and in ``1..n_sources``; ``problems``: why not (empty when compliant).
    """
    text = (text or "").strip()
    problems = []
    refusal = _norm(REFUSAL) in _norm(text) if text else False
    citations = list(dict.fromkeys(int(n) for n in _EXACT.findall(text)))
    body = " ".join(_EXACT.sub(" ", text).split())
    if not text:
        problems.append("empty answer")
    elif refusal:
        if _norm(text) != _norm(REFUSAL):
            problems.append("refusal mixed with other text")
    else:
        if not citations:
            problems.append("no [Source N] citation")
        bad = [n for n in citations if not 1 <= n <= n_sources]
        if bad:
            problems.append(f"cites a source that does not exist ({', '.join(map(str, bad))}; "
                            f"{n_sources} shown)")
        malformed = _CITATION_LIKE.findall(_EXACT.sub(" ", text))
        if malformed:
            problems.append(f"malformed citation {malformed[0]!r}")
        if len(re.sub(r"[^\w]+", " ", body).split()) < 2:
            problems.append("no answer text besides the citations")
        if len(body.split()) > max_words:
            problems.append(f"too long ({len(body.split())} words > {max_words})")
    return {"refusal": refusal, "citations": citations, "body": body,
            "compliant": not problems, "problems": problems}


_STOPWORDS = frozenset("""a an the and or but if then else of to in on at by for with from into onto as is are was
were be been being it its this that these those there here which what who whom whose how why when where do does
did doing done can could should would will shall may might must you your we our they their he she his her i me my
not no yes so such than too very also just only any all each some more most other both either neither one per via
use used using get gets given give gives return returns returned source sources answer python""".split())


def content_words(text: str) -> list[str]:
    """Lower-cased content words of ``text``: runs of letters/digits (so ``os.path.join`` ->
    ``os, path, join``), without stopwords and one-letter tokens, a final "s" dropped from words
    longer than three letters (a crude stemmer: ``returns`` ~ ``return``)."""
    out = []
    for tok in re.findall(r"[a-z0-9]+", text.lower()):
        if len(tok) < 2 or tok in _STOPWORDS:
            continue
        out.append(tok[:-1] if len(tok) > 3 and tok.endswith("s") else tok)
    return out


def overlap(question: str, passage: str) -> float:
    """Share of the question's content words (:func:`content_words`) that occur in ``passage`` (0..1)."""
    q = set(content_words(question))
    return len(q & set(content_words(passage))) / len(q) if q else 0.0


def support(answer_body: str, passages: list[str]) -> float | None:
    """Faithfulness of one answer: the share of its content words that occur in ``passages``.

    In: the answer without citations, the texts of the passages it cites. Out: a float in 0..1
    (1 = every content word appears in a cited passage); 0.0 when it cites nothing; None when
    the answer has no content word. A word-overlap proxy: it misses paraphrases (counts them as
    unsupported) and wrong combinations of supported words (counts them as supported).
    """
    words = content_words(answer_body)
    if not words:
        return None
    vocab = set(content_words(" ".join(passages)))
    return sum(w in vocab for w in words) / len(words)


def score_answer(answer: str, record: dict, max_words: int = MAX_ANSWER_WORDS) -> dict:
    """Score one answer against a generation record (``data.GENERATION_FIELDS``).

    Out: ``parse_answer``'s fields plus ``answerable``, ``kind``, ``gold`` (the reference's cited
    source numbers), ``correct`` (answerable, not refused, and cites a gold source; None when not
    answerable), ``extra_citations`` (cites a non-gold source too) and ``faithfulness``
    (:func:`support` against the *cited* passages; None for refusals).
    """
    passages = [p["text"] for p in record["passages"]]
    parsed = parse_answer(answer, len(passages), max_words)
    gold = list(record.get("cited") or [])
    answerable = bool(record.get("answerable", bool(gold)))
    answered = not parsed["refusal"]
    cited_text = [passages[n - 1] for n in parsed["citations"] if 1 <= n <= len(passages)]
    return {**parsed, "answerable": answerable, "kind": record.get("kind", "answerable" if answerable else "unanswerable"),
            "gold": gold,
            "correct": (answered and any(n in gold for n in parsed["citations"])) if answerable else None,
            "extra_citations": answered and any(n not in gold for n in parsed["citations"]),
            "faithfulness": support(parsed["body"], cited_text) if answered else None}


#: The metrics of :func:`summarize`, in table order, with what each one averages over.
METRICS = {
    "task success": "all questions: answerable -> a compliant answer citing the right passage; otherwise -> the refusal",
    "format compliance": "all questions: the answer is the refusal alone, or a short answer whose citations are all [Source N] with N shown",
    "cited-source correctness": "answerable questions the model answered: it cites the passage that holds the answer",
    "faithfulness": "answerable questions the model answered: share of answer content words found in the passages it cites",
    "refusal (out-of-scope)": "out-of-scope questions: the model refuses",
    "refusal (answer not in sources)": "in-domain questions whose shown passages lack the answer: the model refuses",
    "false refusals (answerable)": "answerable questions: the model refuses (lower is better)",
}


def task_success(score: dict) -> bool:
    """One scored answer (:func:`score_answer`) handled right under the contract: answerable -> a
    compliant answer citing a gold passage; otherwise -> the refusal, alone."""
    if score["answerable"]:
        return score["compliant"] and bool(score["correct"])
    return score["compliant"] and score["refusal"]


def summarize(scores: list[dict]) -> dict:
    """Average per-answer scores (:func:`score_answer`) into the metrics of :data:`METRICS`.

    Out: ``{metric: value in 0..1}``; a metric whose group is empty is left out.
    """
    def mean(vals):
        vals = [float(v) for v in vals if v is not None]
        return sum(vals) / len(vals) if vals else None

    answerable = [s for s in scores if s["answerable"]]
    answered = [s for s in answerable if not s["refusal"]]
    out = {
        "task success": mean(task_success(s) for s in scores),
        "format compliance": mean(s["compliant"] for s in scores),
        "cited-source correctness": mean(s["correct"] for s in answered),
        "faithfulness": mean(s["faithfulness"] if s["faithfulness"] is not None else 0.0 for s in answered),
        "refusal (out-of-scope)": mean(s["refusal"] for s in scores if s["kind"] == "out_of_scope"),
        "refusal (answer not in sources)": mean(s["refusal"] for s in scores if s["kind"] == "unanswerable"),
        "false refusals (answerable)": mean(s["refusal"] for s in answerable),
    }
    return {k: v for k, v in out.items() if v is not None}


# --------------------------------------------------------------------------------- records
def _passages(doc_ids: list[str], corpus: dict, max_words: int | None) -> list[dict]:
    return [{"doc_id": d, "text": truncate_words(passage_text(corpus[d]), max_words)} for d in doc_ids]


def _contains(passage: str, sentence: str) -> bool:
    return _norm(sentence) in _norm(passage)


def answerable_record(rid: str, question: str, doc_ids: list[str], gold: str, corpus: dict,
                      summary: str, max_words: int | None) -> dict | None:
    """A record whose answer cites the gold passage at its position in ``doc_ids``.

    Returns None when the reference answer would not be grounded: the summary sentence is not in
    the (truncated) gold passage, or another shown passage also contains it (ambiguous source).
    """
    passages = _passages(doc_ids, corpus, max_words)
    pos = doc_ids.index(gold) + 1
    if not summary or not _contains(passages[pos - 1]["text"], summary):
        return None
    if any(_contains(p["text"], summary) for i, p in enumerate(passages, 1) if i != pos):
        return None
    answer = reference_answer(corpus[gold].get("title") or "", summary, pos)
    if not answer_name(corpus[gold].get("title") or "") or support(_EXACT.sub(" ", answer), [passages[pos - 1]["text"]]) < 1.0:
        return None
    return {"id": rid, "question": question, "passages": passages, "answerable": True,
            "answer": answer, "cited": [pos], "kind": "answerable"}


def refusal_record(rid: str, question: str, doc_ids: list[str], corpus: dict, max_words: int | None,
                   kind: str) -> dict:
    """A record whose right answer is :data:`REFUSAL` (``kind``: "out_of_scope" or "unanswerable")."""
    return {"id": rid, "question": question, "passages": _passages(doc_ids, corpus, max_words),
            "answerable": False, "answer": REFUSAL, "cited": [], "kind": kind}


def search_stack(retriever, corpus: dict, queries: dict[str, str], candidates: int = 20,
                 reranker=None, batch_size: int = 64, encoded=None) -> dict[str, list[str]]:
    """Rank passages for each question with the search stack: dense retrieval of ``candidates``
    passages with the SentenceTransformer ``retriever``, re-ranked by the CrossEncoder
    ``reranker`` when one is given.

    In: models, corpus, ``{qid: question}``; ``encoded`` = a precomputed
    ``retrieval.encode_corpus`` pair (else the corpus is encoded here, once).
    Out: ``{qid: [doc_id, ...]}`` best first, ``candidates`` long.
    """
    from . import retrieval
    from .metrics import ranked

    encoded = encoded or retrieval.encode_corpus(retriever, corpus, batch_size=batch_size)
    run = retrieval.dense_search(retriever, encoded, queries, k=candidates, batch_size=batch_size)
    if reranker is not None:
        run, _ = retrieval.rerank(reranker, corpus, queries, run, k=candidates)
    return {q: ranked(run[q]) for q in queries}


def question_order(qrels: dict, split: str, seed: int = 42) -> list[str]:
    """The seeded order in which :func:`build_datasets` takes the questions of ``split``."""
    return sorted(qrels.get(split, {}), key=lambda q: stable_hash(f"{seed}|{split}|{q}"))


def oos_order(out_of_scope: list[dict], split: str, seed: int = 42) -> list[dict]:
    """The seeded order in which :func:`build_datasets` takes the out-of-scope questions of ``split``."""
    return sorted((r for r in out_of_scope if r["split"] == split), key=lambda r: stable_hash(f"{seed}|{r['id']}"))


def questions_to_rank(queries: dict, qrels: dict, out_of_scope: list[dict], sizes: dict[str, dict],
                      pool: float = 2.0, seed: int = 42) -> dict[str, str]:
    """The questions :func:`build_datasets` may need for ``sizes``, so that only those are searched.

    Per split: the first ``pool`` x (answerable + unanswerable) in-domain questions of
    :func:`question_order` (some are dropped by the grounding filters, hence the margin) and the
    first ``pool`` x out_of_scope out-of-scope ones. Out: ``{qid: question}``.
    """
    out = {}
    for split, want in sizes.items():
        n_in = int(pool * (want.get("answerable", 0) + want.get("unanswerable", 0))) + 1
        out.update({q: queries[q] for q in question_order(qrels, split, seed)[:n_in]})
        n_oos = int(pool * want.get("out_of_scope", 0)) + 1
        out.update({r["id"]: r["question"] for r in oos_order(out_of_scope, split, seed)[:n_oos]})
    return out


def build_datasets(corpus: dict, queries: dict, qrels: dict, query_meta: dict, out_of_scope: list[dict],
                   ranked: dict[str, list[str]], sizes: dict[str, dict], k: int = 3,
                   max_words: int | None = 45, max_overlap: float = 0.5, skip=(),
                   seed: int = 42) -> dict[str, list[dict]]:
    """Generation records for each split, from BEIR data and the search stack's rankings.

    In: the BEIR corpus/queries/qrels-by-split/query metadata (``metadata.summary`` = the positive
    passage's first sentence), out-of-scope records ``{"id", "question", "split"}``, ``ranked``
    (:func:`search_stack`, over every question used), ``sizes`` =
    ``{split: {"answerable": n, "unanswerable": n, "out_of_scope": n}}``, ``k`` passages per prompt,
    ``max_words`` per passage, ``skip`` = question ids not to use (e.g. those of another
    dataset). Questions missing from ``ranked`` are skipped too.

    Three kinds of record (``kind``):

    * ``answerable`` — the shown passages hold the answer. In ``train`` the gold passage is put
      among the top-(k-1) retrieved ones at a random position (so the model must read, not learn
      "always Source 1"); elsewhere only questions whose gold passage the stack ranked in its top
      k are used, in the stack's order.
    * ``unanswerable`` — an in-domain question shown the top-k passages *other than* its gold one
      (near-misses: same module, similar words). Dropped when a shown passage contains the gold
      summary sentence, is another part of the gold object, or shares more than ``max_overlap``
      of the question's content words (:func:`overlap`) — such a passage may well answer it, and
      a refusal label there would teach the model to refuse answerable questions.
    * ``out_of_scope`` — a question about another tool, shown its top-k retrieved passages.

    Out: ``{split: [record, ...]}``, records following ``data.GENERATION_FIELDS`` plus ``kind``
    and ``qid`` (the question's id); questions are taken in a seeded order
    (:func:`question_order`), so the same arguments give the same records.
    """
    out = {}
    skip = set(skip)
    for split, want in sizes.items():
        order = [q for q in question_order(qrels, split, seed) if q in ranked and q not in skip]
        rng = random.Random(stable_hash(f"{seed}|{split}|positions"))
        recs, used = [], set()
        n_ans = n_un = 0
        for qid in order:  # answerable first: each question is used for one kind only
            if n_ans >= want.get("answerable", 0):
                break
            gold = next(d for d, s in qrels[split][qid].items() if s > 0)
            top = ranked[qid][:k]
            if split == "train":
                top = [d for d in ranked[qid] if d != gold][: k - 1]
                top.insert(rng.randrange(k), gold)
            elif gold not in top:
                continue
            rec = answerable_record(f"{split}-ans-{qid}", queries[qid], top, gold, corpus,
                                    query_meta.get(qid, {}).get("summary", ""), max_words)
            if rec:
                rec["qid"] = qid
                recs.append(rec)
                used.add(qid)
                n_ans += 1
        for qid in order:
            if n_un >= want.get("unanswerable", 0):
                break
            if qid in used:
                continue
            gold = next(d for d, s in qrels[split][qid].items() if s > 0)
            summary = query_meta.get(qid, {}).get("summary", "")
            shown = [d for d in ranked[qid] if d != gold][:k]
            gold_name = answer_name(corpus[gold].get("title") or "").split(".")[-1]
            if any((summary and _contains(passage_text(corpus[d]), summary))
                   or answer_name(corpus[d].get("title") or "").split(".")[-1] == gold_name
                   or overlap(queries[qid], passage_text(corpus[d])) > max_overlap for d in shown):
                continue
            recs.append({**refusal_record(f"{split}-un-{qid}", queries[qid], shown, corpus, max_words,
                                          "unanswerable"), "qid": qid})
            n_un += 1
        oos = [r for r in oos_order(out_of_scope, split, seed) if r["id"] in ranked and r["id"] not in skip]
        for r in oos[: want.get("out_of_scope", 0)]:
            recs.append({**refusal_record(f"{split}-oos-{r['id']}", r["question"], ranked[r["id"]][:k], corpus,
                                          max_words, "out_of_scope"), "qid": r["id"]})
        out[split] = recs
    return out


def write_generation_jsonl(path: str | Path, records: list[dict]) -> Path:
    """Write records as JSONL (one per line, UTF-8), atomically; read back with ``data.load_generation_jsonl``."""
    from .config import atomic_write_text

    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return Path(path)


def chat_example(record: dict, few_shot: bool = True, answer: str | None = None) -> dict:
    """A TRL prompt-completion example (conversational): ``{"prompt": messages, "completion":
    [assistant turn]}``. The completion is the record's reference answer unless ``answer`` is given."""
    prompt = build_messages(record["question"], [p["text"] for p in record["passages"]], few_shot=few_shot)
    return {"prompt": prompt,
            "completion": [{"role": "assistant", "content": record["answer"] if answer is None else answer}]}


# --------------------------------------------------------------------------------- generation
def generate(model, tokenizer, prompts: list[list[dict]], max_new_tokens: int = 64,
             batch_size: int = 8) -> tuple[list[str], list[int], list[float]]:
    """Greedy answers for chat prompts, in batches with left padding (prompts of similar length
    are batched together).

    In: a causal LM and its tokenizer (with a chat template), a list of message lists
    (:func:`build_messages`), the generation limit, the batch size.
    Out: ``(answers, new_token_counts, seconds)`` in the order of ``prompts``; ``seconds`` is
    each answer's share of its batch's wall time.
    """
    import torch

    texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    answers, counts, seconds = [None] * len(texts), [0] * len(texts), [0.0] * len(texts)
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    try:
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            batch = tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True,
                              add_special_tokens=False).to(model.device)
            t0 = time.perf_counter()
            with torch.no_grad():
                out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                     pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
            dt = (time.perf_counter() - t0) / len(idx)
            new = out[:, batch["input_ids"].shape[1]:]
            for row, i in zip(new, idx):
                ids = row.tolist()
                n = ids.index(tokenizer.eos_token_id) + 1 if tokenizer.eos_token_id in ids else len(ids)
                answers[i] = tokenizer.decode(ids[:n], skip_special_tokens=True).strip()
                counts[i], seconds[i] = n, dt
    finally:
        tokenizer.padding_side = side
    return answers, counts, seconds


def evaluate(model, tokenizer, records: list[dict], few_shot: bool | list[dict] = True,
             max_new_tokens: int = 64, batch_size: int = 8) -> dict:
    """Generate an answer for every record with the contract's prompt and score it.

    In: a causal LM + tokenizer, generation records, the prompt's few-shot setting (the same for
    every system compared), generation settings.
    Out: ``{"metrics": summarize(...), "answers": [...], "scores": [...],
    "cost": {"new tokens per answer", "seconds per answer"}}``.
    """
    prompts = [build_messages(r["question"], [p["text"] for p in r["passages"]], few_shot=few_shot)
               for r in records]
    answers, counts, seconds = generate(model, tokenizer, prompts, max_new_tokens, batch_size)
    scores = [score_answer(a, r) for a, r in zip(answers, records)]
    n = max(len(records), 1)
    return {"metrics": summarize(scores), "answers": answers, "scores": scores,
            "cost": {"new tokens per answer": sum(counts) / n, "seconds per answer": sum(seconds) / n}}


# --------------------------------------------------------------------------------- preference pairs
_UNSUPPORTED = [
    "It was added in Python 3.13 and is thread-safe.",
    "It runs in constant time and never raises an exception.",
    "It is deprecated and will be removed in the next release.",
    "It uses the C library and caches every result on disk.",
]


def corrupt_wrong_source(record: dict, seed: int = 0) -> str | None:
    """The reference answer citing another shown source instead of the gold one (None if not possible)."""
    if not record["answerable"] or len(record["passages"]) < 2:
        return None
    others = [n for n in range(1, len(record["passages"]) + 1) if n not in record["cited"]]
    wrong = others[stable_hash(f"{seed}|{record['id']}|wrong") % len(others)]
    return _EXACT.sub(CITATION.format(n=wrong), record["answer"])


def corrupt_no_citation(record: dict, seed: int = 0) -> str | None:
    """The reference answer with its citations removed (None for refusals)."""
    if not record["answerable"]:
        return None
    return re.sub(r"\s+\.", ".", _EXACT.sub("", record["answer"])).strip()


def corrupt_unsupported(record: dict, seed: int = 0) -> str | None:
    """The reference answer plus a sentence that no source supports (None for refusals)."""
    if not record["answerable"]:
        return None
    extra = _UNSUPPORTED[stable_hash(f"{seed}|{record['id']}|extra") % len(_UNSUPPORTED)]
    return f"{record['answer']} {extra}"


def corrupt_false_refusal(record: dict, seed: int = 0) -> str | None:
    """The refusal, for a question the sources do answer (None for refusals)."""
    return REFUSAL if record["answerable"] else None


def corrupt_answer_anyway(record: dict, seed: int = 0) -> str | None:
    """For a question the sources do not answer: a confident answer made from the first source,
    cited (None for answerable records)."""
    if record["answerable"]:
        return None
    first = record["passages"][0]["text"]
    title, _, text = first.partition("\n")
    sentence = re.split(r"(?<=[.!?])\s", text.strip())[0].rstrip(".") if text.strip() else title
    return f"{answer_name(title)}: {sentence} {CITATION.format(n=1)}."


#: Controlled failures for preference pairs: name -> function(record, seed) -> rejected answer or None.
CORRUPTIONS = {
    "wrong source": corrupt_wrong_source,
    "no citation": corrupt_no_citation,
    "unsupported sentence": corrupt_unsupported,
    "refuses answerable": corrupt_false_refusal,
    "answers unanswerable": corrupt_answer_anyway,
}
