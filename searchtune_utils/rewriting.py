"""Query rewriting (notebook 05): raw search-box queries, a no-model expansion, the rewriter's
prompt and training targets, a retrieval reward and the preference pairs built from it.

Everything here is plain Python on BEIR-shaped data (corpus ``{doc_id: {"title", "text"}}``,
queries ``{qid: text}``, qrels ``{qid: {doc_id: grade}}``, runs ``{qid: {doc_id: score}}``); the
notebook calls the libraries (``SFTTrainer``, ``DPOTrainer``, ``model.generate``) itself.

* :func:`raw_query` / :func:`raw_queries` — what a person types into a search box (1-4 words),
  made by a deterministic rule from each question: its content words with the highest IDF over
  the corpus, in the question's order; per split, with no raw query shared between splits.
* :func:`prf_expand` / :func:`prf_queries` — RM3-style pseudo-relevance feedback: the raw query
  plus the terms that weigh most in BM25's top passages (no model).
* :func:`first_words_query` / :func:`make_query` — the "novice" rule (first content words) beside
  the "expert" one (rarest words).
* :func:`weighted`, :func:`choose_r` — the deployed query (raw query ``r`` times + expansion) and
  its weight chosen on dev; :func:`translation_table` / :func:`translate` — a no-model baseline
  that learns document words for query words from training pairs.
* :func:`rewrite_messages`, :func:`summary_sentence` — the rewriter's chat prompt and its training
  target (the answering passage's first sentence: text in the corpus's own words).
* :func:`clean_rewrite`, :func:`repetition_rate`, :func:`rewrite_stats` — tidy and describe rewrites.
* :func:`reciprocal_rank`, :func:`reward`, :func:`preference_pairs` — the retrieval reward and DPO pairs.
* :func:`load_rewriter`, :func:`rewrite_queries` — notebook 05's rewriter, loaded and deployed in one call each
  (for notebook 06).
"""
from __future__ import annotations

import math
import re
from collections import Counter


#: Words a search-box query leaves out: function words, question words and the phrasing of
#: questions ("is there a way to", "which function should I use"), and "python" itself.
STOPWORDS = frozenset("""a an the and or but if then else of to in on at by for with from into onto as is are was were
be been being it its this that these those there here which what who whom whose how why when where do does did doing
done can could should would will shall may might must you your we our they their he she his her i me my mine not no
yes so such than too very also just only any all each some more most other both either neither one per via about
up out off over under again further once am has have had having s t don doesn didn isn aren wasn weren won
way ways want wants need needs use used using get gets got make makes there's what's i'm tell know find
function functions func funcs method methods class classes object objects module modules call called
python standard library stdlib builtin built""".split())

_WORD = re.compile(r"[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*")
_PART = re.compile(r"[a-z0-9]+")


def words(text: str, split_dotted: bool = False) -> list[str]:
    """Lower-cased words of ``text``: runs of letters, digits and ``_``; a dotted name
    (``os.path.join``) is one word, or its parts with ``split_dotted``."""
    out = [w.lower() for w in _WORD.findall(text or "")]
    if split_dotted:
        out = [p for w in out for p in _PART.findall(w)]
    return out


def idf_table(texts) -> dict[str, float]:
    """Inverse document frequency of every word part (:func:`words` with ``split_dotted``) over
    ``texts``: ``log(1 + (N - df + 0.5) / (df + 0.5))``, BM25's IDF. Out: ``{word: idf}``."""
    df: Counter = Counter()
    n = 0
    for text in texts:
        n += 1
        df.update(set(words(text, split_dotted=True)))
    return {w: math.log(1 + (n - d + 0.5) / (d + 0.5)) for w, d in df.items()}


def word_idf(word: str, idf: dict[str, float]) -> float:
    """IDF of one word of :func:`words`: a word the corpus never uses gets the highest possible
    IDF (a rare word is what a person who knows it types); a dotted name, its rarest part's."""
    unseen = max(idf.values(), default=1.0) + 1e-6
    parts = _PART.findall(word.lower()) or [word.lower()]
    return max(idf.get(p, unseen) for p in parts)


def content_words(question: str) -> list[str]:
    """The words of ``question`` a search box keeps: :func:`words` without :data:`STOPWORDS`,
    one-letter words and pure numbers; each word once, in the question's order."""
    out = []
    for w in words(question):
        if len(w) < 2 or w in STOPWORDS or w.isdigit() or w in out:
            continue
        out.append(w)
    return out


def raw_query(question: str, idf: dict[str, float], max_words: int = 3) -> str:
    """The search-box version of ``question``: its :func:`content_words` with the highest IDF
    over the corpus (at most ``max_words``, ties broken by position), written in the question's
    order. Deterministic. A question without content words gives its first word (never an
    empty string for a question with at least one word)."""
    cands = content_words(question)
    if not cands:
        return " ".join(words(question)[:1])
    keep = sorted(range(len(cands)), key=lambda i: (-word_idf(cands[i], idf), i))[:max_words]
    return " ".join(cands[i] for i in sorted(keep))


def first_words_query(question: str, max_words: int = 3) -> str:
    """The "novice" search-box version of ``question``: its first ``max_words``
    :func:`content_words`, in order — what someone types who does not know the documents'
    vocabulary (no IDF: the common words stay). A question without content words gives its
    first word."""
    cands = content_words(question)
    return " ".join(cands[:max_words]) if cands else " ".join(words(question)[:1])


#: The query rules: ``rarest`` (the expert's words, :func:`raw_query`), ``first`` (the novice's,
#: :func:`first_words_query`).
RULES = ("rarest", "first")


def make_query(question: str, idf: dict[str, float], max_words: int = 3, rule: str = "rarest") -> str:
    """:func:`raw_query` (``rule="rarest"``) or :func:`first_words_query` (``rule="first"``)."""
    if rule == "rarest":
        return raw_query(question, idf, max_words)
    if rule == "first":
        return first_words_query(question, max_words)
    raise ValueError(f"unknown query rule {rule!r}: use one of {RULES}")


def raw_queries(queries: dict[str, str], qrels_by_split: dict[str, dict], idf: dict[str, float],
                max_words: int = 3, priority=("test", "dev", "train"), rule: str = "rarest") -> tuple[dict, dict]:
    """Raw queries for every split, with no raw query text in two splits.

    ``rule``: which search-box rule makes the query (:func:`make_query`).
    Splits are processed in ``priority`` order (test first: it must stay whole). A raw query whose
    text another split already holds is lengthened by one more content word (up to ``max_words``
    + 1); if it still collides it is dropped from this split. Within a split, duplicates are kept
    (two questions may well be typed the same way).
    In: queries ``{qid: question}``, ``{split: qrels}``, :func:`idf_table`. Out: ``(raw, dropped)``
    — ``{split: {qid: raw query}}`` (splits in their input order) and ``{split: [qid, ...]}``.
    """
    owner: dict[str, str] = {}
    raw = {s: {} for s in qrels_by_split}
    dropped = {s: [] for s in qrels_by_split}
    order = [s for s in priority if s in qrels_by_split] + [s for s in qrels_by_split if s not in priority]
    for split in order:
        for qid in sorted(qrels_by_split[split]):
            question = queries[qid]
            text = make_query(question, idf, max_words, rule)
            if owner.get(text, split) != split:
                text = make_query(question, idf, max_words + 1, rule)
            if not text or owner.get(text, split) != split:
                dropped[split].append(qid)
                continue
            owner[text] = split
            raw[split][qid] = text
    return raw, dropped


def check_raw_leakage(raw_by_split: dict[str, dict[str, str]]) -> None:
    """Raise ValueError when a raw query text (case/space-insensitive) or a query id is in two splits."""
    seen_text, seen_id = {}, {}
    for split, raw in raw_by_split.items():
        for qid, text in raw.items():
            key = " ".join(text.lower().split())
            if seen_text.setdefault(key, split) != split:
                raise ValueError(f"raw query {text!r} is in both {seen_text[key]!r} and {split!r}")
            if seen_id.setdefault(qid, split) != split:
                raise ValueError(f"query {qid!r} is in both {seen_id[qid]!r} and {split!r}")


# ----------------------------------------------------------------------------- no-model expansion
def prf_terms(query: str, feedback: list[tuple[str, float]], idf: dict[str, float] | None = None,
              n_terms: int = 5) -> list[str]:
    """RM3-style expansion terms from pseudo-relevant passages.

    In: the query, ``feedback`` = ``[(passage text, retrieval score), ...]`` (BM25's top passages),
    an optional :func:`idf_table` (then each weight is multiplied by the word's IDF, so words that
    are everywhere do not win), the number of terms. The relevance model: a word's weight is
    ``sum over passages of (score / total score) x tf(word, passage) / passage length``.
    Out: the ``n_terms`` heaviest words (word parts, stopwords and one-letter words left out) that
    are not already in the query, heaviest first (ties: alphabetical).
    """
    total = sum(max(float(s), 0.0) for _, s in feedback)
    if not feedback or total <= 0:
        return []
    in_query = set(words(query, split_dotted=True))
    weight: Counter = Counter()
    for text, score in feedback:
        toks = [t for t in words(text, split_dotted=True)]
        if not toks:
            continue
        share = max(float(score), 0.0) / total
        for w, tf in Counter(toks).items():
            if len(w) < 2 or w in STOPWORDS or w.isdigit() or w in in_query:
                continue
            weight[w] += share * tf / len(toks) * (idf.get(w, 1.0) if idf else 1.0)
    return [w for w, _ in sorted(weight.items(), key=lambda x: (-x[1], x[0]))[:n_terms]]


def prf_expand(query: str, feedback: list[tuple[str, float]], idf: dict[str, float] | None = None,
               n_terms: int = 5) -> str:
    """The query followed by its :func:`prf_terms` (the original terms are kept whole: bm25s has
    no per-term weights, so this is RM3's interpolation with the query's own terms first)."""
    terms = prf_terms(query, feedback, idf, n_terms)
    return " ".join([query.strip()] + terms).strip()


def prf_queries(queries: dict[str, str], run: dict[str, dict[str, float]], corpus: dict,
                idf: dict[str, float] | None = None, fb_docs: int = 3, n_terms: int = 5) -> dict[str, str]:
    """:func:`prf_expand` for every query, with its top ``fb_docs`` passages of ``run`` (BM25) as
    feedback. A query with no hit is left as it is. Out: ``{qid: expanded query}``."""
    from .metrics import ranked
    from .retrieval import passage_text

    out = {}
    for qid, text in queries.items():
        top = ranked(run.get(qid) or {})[:fb_docs]
        out[qid] = prf_expand(text, [(passage_text(corpus[d]), run[qid][d]) for d in top], idf, n_terms)
    return out


#: The ``r`` of :func:`weighted` that deploys the raw query alone (the expansion dropped): the choice
#: a dev set makes when no expansion helps.
RAW_ONLY = "raw"


def weighted(raw: str, expansion: str, r: int | str = 1) -> str:
    """The deployed query: the raw query ``r`` times, then the expansion. BM25 counts a word as
    often as the query holds it, so ``r`` is the raw words' weight against the added ones
    (``r = 1``: plain concatenation); ``r = RAW_ONLY`` (``"raw"``) drops the expansion. Out: one string."""
    if r == RAW_ONLY:
        return raw.strip()
    r = int(r)
    if r < 1:
        raise ValueError(f"r must be >= 1 (got {r}): the raw query is always kept")
    return " ".join([raw.strip()] * r + [expansion.strip()]).strip()


def translation_table(pairs, idf: dict[str, float], min_count: int = 2) -> dict[str, str]:
    """A word-translation table learned from (query, answering passage) pairs — no model.

    For every query word ``w`` (:func:`words` with dotted names split) and every word ``v`` of the
    answering passage that the query lacks, count how often they meet; ``w`` translates to the
    ``v`` with the highest ``count(w, v) / count(w) x idf(v)`` (seen with ``w`` often, rare in the
    corpus), when ``count(w, v) >= min_count``. Stopwords, one-letter words and numbers are neither
    source nor target. Ties: alphabetical. Out: ``{word: translation}``.
    """
    seen: Counter = Counter()
    meet: dict[str, Counter] = {}
    for query, passage in pairs:
        q = {w for w in words(query, split_dotted=True) if len(w) > 1 and w not in STOPWORDS and not w.isdigit()}
        p = {v for v in words(passage, split_dotted=True) if len(v) > 1 and v not in STOPWORDS and not v.isdigit()} - q
        for w in q:
            seen[w] += 1
            meet.setdefault(w, Counter()).update(p)
    table = {}
    for w, counts in meet.items():
        scored = [(c / seen[w] * idf.get(v, 0.0), v) for v, c in counts.items() if c >= min_count]
        if scored:
            table[w] = min(scored, key=lambda x: (-x[0], x[1]))[1]
    return table


def translate(query: str, table: dict[str, str]) -> str:
    """The table's translation of each word of ``query`` that has one (in the query's order,
    each translation once, none that the query already holds). Out: a string, ``""`` if none."""
    q = words(query, split_dotted=True)
    out = []
    for w in q:
        t = table.get(w)
        if t and t not in q and t not in out:
            out.append(t)
    return " ".join(out)


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9`'\"(])")


def summary_sentence(doc: dict, max_words: int = 40) -> str:
    """The passage's own summary: the first sentence of its text (split at ``. ``/``! ``/``? ``
    before a capital, digit, quote or bracket), at most ``max_words`` words, one line; the title
    when the text is empty. This is the SFT target of notebook 05: text in the corpus's own words."""
    text = " ".join((doc.get("text") or "").split()) or " ".join((doc.get("title") or "").split())
    first = _SENTENCE_END.split(text, maxsplit=1)[0]
    return " ".join(first.split()[:max_words])


# ----------------------------------------------------------------------------- the rewriter's prompt
SYSTEM_PROMPT = ("Write the sentence from the documentation that answers this search query. "
                 "Reply with the sentence only.")


def rewrite_messages(raw: str, few_shot: list[tuple[str, str]] = (), system: str = SYSTEM_PROMPT) -> list[dict]:
    """The rewriter's chat prompt: the system instruction, then ``few_shot`` (raw, rewrite)
    examples as earlier user/assistant turns, then the raw query as the user turn (no assistant
    turn at the end: ready for ``apply_chat_template(..., add_generation_prompt=True)``)."""
    messages = [{"role": "system", "content": system}]
    for q, r in few_shot:
        messages += [{"role": "user", "content": q}, {"role": "assistant", "content": r}]
    return messages + [{"role": "user", "content": raw}]


def choose_r(raw: dict[str, str], expansions: dict[str, str], evaluate, grid=(1, 2, 3, 4)) -> tuple[int | str, dict]:
    """The raw query's weight for a deployed query (:func:`weighted`), chosen on dev.

    In: dev raw queries ``{qid: raw}``, their expansions ``{qid: text}``, ``evaluate`` — a function
    from ``{qid: query text}`` to the mean score to maximise (e.g. BM25 nDCG@10 on dev) — and the
    candidate weights, which may include :data:`RAW_ONLY` (the raw query alone). Out:
    ``(best r, {r: score})``; ties go to the candidate listed first in ``grid``.
    """
    scores = {r: float(evaluate({q: weighted(raw[q], expansions.get(q, ""), r) for q in raw})) for r in grid}
    best = max(scores.values())
    return next(r for r in grid if scores[r] == best), scores


# ----------------------------------------------------------------------------- cleaning and stats
_PREFIX = re.compile(r"^\s*(?:(?:rewritten|rewrite|expanded|improved|search|new)\s*)?(?:query|question|rewrite)\s*[:\-]\s*",
                     re.IGNORECASE)


def clean_rewrite(text: str, max_words: int = 40) -> str:
    """Tidy one generated rewrite: its first non-empty line, without a leading "Query:" /
    "Rewritten query:" label, list bullet or surrounding quotes, whitespace collapsed, cut to
    ``max_words`` words. Out: a string (``""`` when nothing is left)."""
    lines = [l.strip() for l in (text or "").splitlines() if l.strip()]
    line = lines[0] if lines else ""
    line = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s+", "", line)
    line = _PREFIX.sub("", line)
    line = line.strip().strip("\"'`“”‘’").strip()
    return " ".join(line.split()[:max_words])


def repetition_rate(text: str) -> float:
    """Share of the words of ``text`` (:func:`words`, dotted names split) that repeat an earlier
    word: 0 for all-distinct words, -> 1 for one word over and over; 0 for an empty text."""
    toks = words(text, split_dotted=True)
    return 1 - len(set(toks)) / len(toks) if toks else 0.0


def rewrite_stats(texts: list[str]) -> dict:
    """Words per rewrite (mean, median, max), mean :func:`repetition_rate`, and the share of
    empty rewrites. Out: a dict of floats."""
    import statistics

    n = [len(t.split()) for t in texts]
    if not n:
        return {"words (mean)": 0.0, "words (median)": 0.0, "words (max)": 0, "repetition (mean)": 0.0, "empty (share)": 0.0}
    return {"words (mean)": round(statistics.fmean(n), 2), "words (median)": float(statistics.median(n)),
            "words (max)": max(n), "repetition (mean)": round(statistics.fmean(repetition_rate(t) for t in texts), 4),
            "empty (share)": round(sum(not t.strip() for t in texts) / len(texts), 4)}


# ----------------------------------------------------------------------------- reward and pairs
def reciprocal_rank(doc_scores: dict[str, float], relevant, k: int = 100) -> float:
    """1 / rank of the first relevant doc in ``doc_scores`` (trec_eval order, :func:`metrics.ranked`)
    within the top ``k``; 0.0 when none is there. ``relevant``: doc ids (or a qrels row; grade >= 1)."""
    from .metrics import ranked

    rel = {d for d, g in relevant.items() if g >= 1} if isinstance(relevant, dict) else set(relevant)
    for i, d in enumerate(ranked(doc_scores or {})[:k], start=1):
        if d in rel:
            return 1.0 / i
    return 0.0


def reward(rr: float, text: str, free_words: int = 30, length_penalty: float = 0.01,
           repetition_penalty: float = 0.5, min_words: int = 0) -> float:
    """The rewriter's reward for one rewrite: its retrieval score ``rr`` (a reciprocal rank in
    0..1, or a mix of several) minus ``length_penalty`` per word beyond ``free_words`` and
    ``repetition_penalty`` x :func:`repetition_rate` — rewrites otherwise drift into endless
    keyword lists (DeepRetrieval). An empty rewrite gets -1, and so does one shorter than
    ``min_words`` words: the length floor against the reward hack of writing (almost) nothing, which
    costs least when the raw query's weight drowns the rewrite."""
    if not text.strip() or len(text.split()) < min_words:
        return -1.0
    extra = max(0, len(text.split()) - free_words)
    return rr - length_penalty * extra - repetition_penalty * repetition_rate(text)


def preference_pairs(scored: dict[str, list[tuple[str, float]]], min_margin: float = 0.0) -> list[dict]:
    """DPO pairs, best ≻ worst, from scored samples.

    In: ``{qid: [(rewrite, reward), ...]}`` (several sampled rewrites per query). Duplicate
    rewrites are merged first (first occurrence kept). A query gives one pair when its best reward
    beats its worst by more than ``min_margin``; ties (e.g. every sample misses the passage) give
    none. The best is the first sample with the highest reward, the worst the first with the lowest.
    Out: ``[{"qid", "chosen", "rejected", "chosen_reward", "rejected_reward"}]`` in input order.
    """
    pairs = []
    for qid, samples in scored.items():
        seen, ordered = set(), []
        for t, r in samples:
            if t not in seen:
                seen.add(t)
                ordered.append((t, r))
        if len(ordered) < 2:
            continue
        best = max(ordered, key=lambda x: x[1])
        worst = min(ordered, key=lambda x: x[1])
        if best[1] - worst[1] <= min_margin:
            continue
        pairs.append({"qid": qid, "chosen": best[0], "rejected": worst[0],
                      "chosen_reward": best[1], "rejected_reward": worst[1]})
    return pairs


# ----------------------------------------------------------------------------- the deployed rewriter
def load_rewriter(adapter_dir, base_model: str):
    """Notebook 05's rewriter as it was measured: the base model + the LoRA adapter in
    ``adapter_dir``, merged, and the deployment settings 05 saved beside it (``deploy.json``:
    the system prompt, the raw query's weight ``r`` per query set, the generation limits).
    Out: ``(model, tokenizer, setup)``. A missing folder raises FileNotFoundError naming the fix."""
    import json
    from pathlib import Path

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter_dir = Path(adapter_dir)
    setup_file = adapter_dir / "deploy.json"
    if not (adapter_dir / "adapter_config.json").exists() or not setup_file.exists():
        raise FileNotFoundError(f"{adapter_dir}: no adapter_config.json / deploy.json — run notebook 05 "
                                "in this profile on this dataset first")
    setup = json.loads(setup_file.read_text(encoding="utf-8"))
    tokenizer = AutoTokenizer.from_pretrained(adapter_dir)
    base = AutoModelForCausalLM.from_pretrained(base_model, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    return model, tokenizer, setup


def rewrite_queries(model, tokenizer, raw: dict[str, str], setup: dict, query_set: str = "expert",
                    batch_size: int = 16, precision: str = "fp32") -> tuple[dict[str, str], dict[str, str]]:
    """Rewrite raw queries greedily with :func:`load_rewriter`'s model and deploy them as 05 did:
    :func:`clean_rewrite`, then :func:`weighted` with ``setup["r"][query_set]``.
    Out: ``(rewrites, deployed)``, both ``{qid: text}``; an empty rewrite deploys the raw query alone."""
    from .generation import generate

    ids = list(raw)
    prompts = [rewrite_messages(raw[q], system=setup["system_prompt"]) for q in ids]
    answers, _, _ = generate(model, tokenizer, prompts, max_new_tokens=setup["max_new_tokens"], batch_size=batch_size,
                              precision=precision)
    rewrites = {q: clean_rewrite(a, setup["target_words"]) for q, a in zip(ids, answers)}
    r = setup["r"][query_set]  # an int, or RAW_ONLY
    return rewrites, {q: weighted(raw[q], rewrites[q], r) for q in ids}
