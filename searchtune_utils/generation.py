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
into the metrics table of the notebooks. The rest loads the search stack notebook 02 chose
(:func:`load_search_stack`, :func:`search_stack`), turns generation records (built by
``generator_data``) into chat examples for TRL (:func:`chat_example`), generates
answers in batches (:func:`generate`), measures the extractive rule baseline
(:func:`rule_answer`, :func:`choose_threshold`), puts confidence intervals and paired tests on the
rates (:func:`metrics_with_ci`, :func:`paired_tests`). Preference pairs are built in
``generator_data.preference_pairs``.

A citation may stand before or after the sentence it supports: ``[Source 2] math.floor: Return
the floor of x.`` ("citation first") and ``math.floor: Return the floor of x [Source 2].`` are
both compliant; :func:`reference_answer` writes either.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

from .data import seeded_order
from .metrics import rate_ci  # noqa: F401  (statistics live in metrics; re-exported for notebook 06)

# --------------------------------------------------------------------------------- the contract
REFUSAL = "I cannot answer this from the provided sources."
CITATION = "[Source {n}]"
MAX_ANSWER_WORDS = 50

SYSTEM_PROMPT = (
    "You answer questions about Python's standard library using only the numbered sources in the "
    "user's message. Reply with one short sentence that names the function, class or exception that "
    "answers the question and says what it does, and cite the source you used, written exactly as "
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

#: The same two examples in the other order (refusal first), the answer written citation first and
#: citing Source 1, as it mostly is once the search stack has ranked the passages.
FEW_SHOT_CITATION_FIRST = [
    FEW_SHOT[1],
    {"question": "how do I round a number down to an int?",
     "passages": ["math.floor(x, /)\nReturn the floor of x as an Integral.",
                  "math.ceil(x, /)\nReturn the ceiling of x as an Integral."],
     "answer": "[Source 1] math.floor: Return the floor of x as an Integral."},
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


def reference_answer(title: str, summary: str, source: int, citation_first: bool = False) -> str:
    """The reference answer, made by rule: ``"<object name>: <summary sentence> [Source n]."``, or
    with ``citation_first``: ``"[Source n] <object name>: <summary sentence>."``.

    Both parts are copied from the cited passage (its title and first sentence), so a reference
    answer says nothing its source does not say.
    """
    name, sentence, cite = answer_name(title), summary.strip().rstrip("."), CITATION.format(n=source)
    return f"{cite} {name}: {sentence}." if citation_first else f"{name}: {sentence} {cite}."


def extractive_answer(passage: str, source: int, citation_first: bool = False) -> str:
    """Copy one passage (``"title\ntext"``) into the answer format: its object name and its first
    sentence, citing ``[Source source]`` (:func:`reference_answer`). A passage without text gives
    its title as the sentence."""
    title, _, text = passage.partition("\n")
    sentence = re.split(r"(?<=[.!?])\s", text.strip())[0] if text.strip() else title
    return reference_answer(title, sentence, source, citation_first)


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


def names_gold(body: str, record: dict) -> bool:
    """Whether an answer's text names the answering object, ``record["gold_name"]`` (e.g.
    ``tarfile.TarFile.addfile``), as a whole dotted name, case ignored: ``tarfile.TarFile.add``
    does not name ``tarfile.TarFile.addfile``, even when the rest of the answer copies the right
    sentence. A record without a ``gold_name`` asks for its ``gold_sentence`` instead (case and
    punctuation ignored). Citing the right source while naming something else is not a correct answer."""
    name = record.get("gold_name")
    if name:
        return re.search(rf"(?<![\w.]){re.escape(name.lower())}(?!\w)", body.lower()) is not None
    sentence = record.get("gold_sentence")
    return bool(sentence) and _norm(sentence) in _norm(body)


def score_answer(answer: str, record: dict, max_words: int = MAX_ANSWER_WORDS) -> dict:
    """Score one answer against a generation record (``data.GENERATION_FIELDS``).

    Out: ``parse_answer``'s fields plus ``answerable``, ``kind``, ``gold`` (the reference's cited
    source numbers), ``correct`` (the strict scorer: answerable, not refused, cites a gold source
    and — when the record has ``gold_name``/``gold_sentence`` — names the gold object,
    :func:`names_gold`; None when not answerable), ``correct (lenient)`` (cites a gold source,
    whatever it says; None when not answerable), ``extra_citations`` (cites a non-gold source too) and ``faithfulness``
    (:func:`support` against the *cited* passages; None for refusals).
    """
    passages = [p["text"] for p in record["passages"]]
    parsed = parse_answer(answer, len(passages), max_words)
    gold = list(record.get("cited") or [])
    answerable = bool(record.get("answerable", bool(gold)))
    answered = not parsed["refusal"]
    cited_text = [passages[n - 1] for n in parsed["citations"] if 1 <= n <= len(passages)]
    cites_gold = correct = answered and any(n in gold for n in parsed["citations"])
    if correct and (record.get("gold_name") or record.get("gold_sentence")):
        correct = names_gold(parsed["body"], record)
    return {**parsed, "answerable": answerable, "kind": record.get("kind", "answerable" if answerable else "unanswerable"),
            "gold": gold,
            "correct": correct if answerable else None,
            "correct (lenient)": cites_gold if answerable else None,
            "extra_citations": answered and any(n not in gold for n in parsed["citations"]),
            "faithfulness": support(parsed["body"], cited_text) if answered else None}


#: The metrics of :func:`summarize`, in table order, with what each one averages over.
METRICS = {
    "task success": "all questions: answerable -> a compliant answer citing the right passage and naming its object; otherwise -> the refusal",
    "task success (lenient)": "as task success, but an answer that cites the right passage counts whatever it names",
    "format compliance": "all questions: the answer is the refusal alone, or a short answer whose citations are all [Source N] with N shown",
    "cited-source correctness": "answerable questions the model answered: it cites the passage that holds the answer (and, where the record says, names its object or states its sentence)",
    "faithfulness": "answerable questions the model answered: share of answer content words found in the passages it cites",
    "refusal (out-of-scope)": "out-of-scope questions: the model refuses",
    "refusal (answer not in sources)": "in-domain questions whose shown passages lack the answer: the model refuses",
    "false refusals (answerable)": "answerable questions: the model refuses (lower is better)",
}


def task_success(score: dict, lenient: bool = False) -> bool:
    """One scored answer (:func:`score_answer`) handled right under the contract: answerable -> a
    compliant answer citing a gold passage and naming its object (``lenient``: citing it is
    enough); otherwise -> the refusal, alone."""
    if score["answerable"]:
        return score["compliant"] and bool(score["correct (lenient)" if lenient else "correct"])
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
        "task success (lenient)": mean(task_success(s, lenient=True) for s in scores),
        "format compliance": mean(s["compliant"] for s in scores),
        "cited-source correctness": mean(s["correct"] for s in answered),
        "faithfulness": mean(s["faithfulness"] if s["faithfulness"] is not None else 0.0 for s in answered),
        "refusal (out-of-scope)": mean(s["refusal"] for s in scores if s["kind"] == "out_of_scope"),
        "refusal (answer not in sources)": mean(s["refusal"] for s in scores if s["kind"] == "unanswerable"),
        "false refusals (answerable)": mean(s["refusal"] for s in answerable),
    }
    return {k: v for k, v in out.items() if v is not None}


# --------------------------------------------------------------------------------- uncertainty
#: The metrics whose question group does not depend on the system (all questions, or one kind of
#: question), so two systems can be compared question by question (:func:`paired_tests`).
PAIRED_METRICS = ("task success", "task success (lenient)", "format compliance", "false refusals (answerable)",
                  "refusal (answer not in sources)", "refusal (out-of-scope)")

#: How the notebooks name the three kinds of question.
KIND_NAMES = {"answerable": "answerable", "unanswerable": "answer not in sources (near-miss)",
              "out_of_scope": "out-of-scope"}


def per_question(scores: list[dict], ids: list[str] | None = None):
    """The metrics of :func:`summarize`, one row per question: a DataFrame indexed by ``ids``
    (default 0..n-1), one column per metric of :data:`METRICS`, 0/1 (faithfulness: 0..1) where the
    metric applies to the question and NaN where it does not. Column means = :func:`summarize`."""
    import pandas as pd

    nan = float("nan")
    rows = []
    for s in scores:
        answered = s["answerable"] and not s["refusal"]
        rows.append([
            float(task_success(s)), float(task_success(s, lenient=True)), float(s["compliant"]),
            float(bool(s["correct"])) if answered else nan,
            (s["faithfulness"] if s["faithfulness"] is not None else 0.0) if answered else nan,
            float(s["refusal"]) if s["kind"] == "out_of_scope" else nan,
            float(s["refusal"]) if s["kind"] == "unanswerable" else nan,
            float(s["refusal"]) if s["answerable"] else nan,
        ])
    index = pd.Index(list(ids) if ids is not None else range(len(scores)), name="id")
    return pd.DataFrame(rows, index=index, columns=list(METRICS), dtype=float)


def metrics_with_ci(scores_by_system: dict[str, list[dict]], confidence: float = 0.95):
    """Every metric of every system with its ``confidence`` interval (:func:`rate_ci`).

    In: ``{system: [score_answer(...) per question]}``. Out: a long DataFrame with columns
    ``system, metric, n, value, ci_low, ci_high`` (``n`` = questions the metric averages over);
    :func:`ci_text` turns it into a readable table.
    """
    import pandas as pd

    rows = []
    for system, scores in scores_by_system.items():
        table = per_question(scores)
        for metric in METRICS:
            value, low, high, n = rate_ci(table[metric], confidence)
            if n:
                rows.append({"system": system, "metric": metric, "n": n, "value": value, "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows, columns=["system", "metric", "n", "value", "ci_low", "ci_high"])


def _ci_cell(value: float, low: float, high: float, digits: int = 2) -> str:
    if low != low:
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def ci_text(table, digits: int = 2):
    """:func:`metrics_with_ci`'s table as text: one row per metric, one column per system, each cell
    ``"value [low, high]"``. A metric whose question count is the same for every system names it."""
    import pandas as pd

    out = {}
    for metric in dict.fromkeys(table["metric"]):
        sub = table[table["metric"] == metric]
        ns = set(sub["n"])
        label = f"{metric} ({ns.pop()} q)" if len(ns) == 1 and metric in PAIRED_METRICS else metric
        out[label] = {r.system: _ci_cell(r.value, r.ci_low, r.ci_high, digits) for r in sub.itertuples()}
    frame = pd.DataFrame.from_dict(out, orient="index").fillna("")
    frame.index.name = "metric (95% CI)"
    return frame


def task_success_by_kind(scores_by_system: dict[str, list[dict]], confidence: float = 0.95, digits: int = 2,
                         groups: list[str] | None = None):
    """Task success (:func:`task_success`) per kind of question, with its ``confidence`` interval.

    Out: a DataFrame, one row per kind (named as in :data:`KIND_NAMES`, with the question count)
    plus "all", one column per system, cells ``"value [low, high]"``. ``groups``: one label per
    question (e.g. ``generator_data.slice_name``) to group by instead of the kind, in order of
    first appearance.
    """
    import pandas as pd

    out = {}
    first = next(iter(scores_by_system.values()))
    labels = list(groups) if groups is not None else [s["kind"] for s in first]
    for kind in (list(dict.fromkeys(labels)) if groups is not None else [k for k in KIND_NAMES if k in labels]) + ["all"]:
        idx = [i for i, g in enumerate(labels) if kind == "all" or g == kind]
        row = {}
        for system, scores in scores_by_system.items():
            value, low, high, _ = rate_ci([float(task_success(scores[i])) for i in idx], confidence)
            row[system] = _ci_cell(value, low, high, digits)
        out[f"{KIND_NAMES.get(kind, kind)} ({len(idx)} q)"] = row
    frame = pd.DataFrame.from_dict(out, orient="index")
    frame.index.name = f"task success by {'slice' if groups is not None else 'kind'} (95% CI)"
    return frame


def paired_tests(scores_by_system: dict[str, list[dict]], baseline: str, metric_names=PAIRED_METRICS,
                 as_dict: bool = False, **kwargs):
    """Each system against ``baseline`` on the same questions, per metric of ``metric_names``
    (those of :data:`PAIRED_METRICS`: their question group is the same for every system).

    Uses ``metrics.compare_paired`` (paired bootstrap 95% CI + paired randomization test over the
    per-question 0/1 outcomes of :func:`per_question`). A metric with fewer than 2 questions is
    left out. Out: one DataFrame (rows: (metric with its question count, system)), or with
    ``as_dict``: ``{system: {metric: metrics.paired_test(...)}}`` for a results file.
    """
    import pandas as pd

    from . import metrics as _metrics

    tables = {name: per_question(scores) for name, scores in scores_by_system.items()}
    parts, numbers = [], {name: {} for name in tables if name != baseline}
    for metric in metric_names:
        sub = {name: t[[metric]].dropna() for name, t in tables.items()}
        if len(sub[baseline]) < 2:
            continue
        if as_dict:
            for name in numbers:
                numbers[name][metric] = _metrics.paired_test(sub[baseline][metric], sub[name][metric], **kwargs)
            continue
        part = _metrics.compare_paired(sub, baseline, metric, **kwargs)
        part.index = pd.MultiIndex.from_product([[f"{metric} ({len(sub[baseline])} q)"], part.index],
                                                names=["metric", "system"])
        parts.append(part)
    return numbers if as_dict else pd.concat(parts)


def answer_positions(records: list[dict]):
    """Where the answering passage sits in each record's prompt: ``"Source n"`` for answerable
    records, ``"not shown (near-miss)"`` and ``"out-of-scope question"`` for the others.
    Out: counts as a pandas Series, sources first."""
    import pandas as pd

    labels = [f"Source {r['cited'][0]}" if r.get("answerable") and r.get("cited") else
              "out-of-scope question" if r.get("kind") == "out_of_scope" else "not shown (near-miss)"
              for r in records]
    k = max((len(r["passages"]) for r in records), default=0)
    order = [f"Source {n}" for n in range(1, k + 1)] + ["not shown (near-miss)", "out-of-scope question"]
    return pd.Series(labels, dtype=str).value_counts().reindex(order, fill_value=0)


def error_kind(score: dict, record: dict) -> str | None:
    """What went wrong in one scored answer (:func:`score_answer`), or None when it is right.

    ``"wrong format"``, ``"refuses answerable"``, ``"cites the right source, names something else"``
    (the record's ``gold_name``/``gold_sentence`` missing from the answer), ``"right words, wrong [Source N]"`` (every content
    word is in the answering passage, but it cites another number), ``"answered from another
    passage"``, ``"unsupported words"`` (right source, words not in it), ``"answers near-miss"``,
    ``"answers out-of-scope"``."""
    if not score["compliant"]:
        return "wrong format"
    if score["answerable"]:
        if score["refusal"]:
            return "refuses answerable"
        if not score["correct"]:
            if any(n in score["gold"] for n in score["citations"]):
                return "cites the right source, names something else"
            gold_text = [record["passages"][n - 1]["text"] for n in score["gold"]]
            return "right words, wrong [Source N]" if support(score["body"], gold_text) == 1.0 else "answered from another passage"
        if (score["faithfulness"] or 0.0) < 1.0:
            return "unsupported words"
        return None
    if score["refusal"]:
        return None
    return "answers out-of-scope" if score["kind"] == "out_of_scope" else "answers near-miss"


# --------------------------------------------------------------------------------- the search stack
def load_search_stack(profile: str, dataset: str = "pydocs", base_retriever: str = "minilm",
                      load_models: bool = True, verbose: bool = True) -> dict:
    """The retrieval stack notebook 02 chose on dev, for every generator notebook (03, 04, ...).

    * **retriever**: notebook 01's fine-tuned embedder
      (``config.artifact_dir("01_finetune_embeddings", "model", profile, dataset)``), else the base
      ``base_retriever``;
    * **reranker and order**: ``results/02_finetune_reranker….json`` (``models["blend weight w"]``)
      says what 02 chose on dev, and the reranker is its saved model
      (``artifact_dir("02_finetune_reranker", "model", ...)``). ``0 < w < 1``: rank by the blend
      ``rerankers.interpolate(retriever run, reranker run, w)``; ``w = 1``: the reranker's order;
      ``w = 0``: the retriever alone (no reranker loaded). Without 02's results file or model:
      the retriever alone.
    * **confidence**: the score the rule baseline thresholds (:func:`rule_answer`): the reranker's
      raw score of a passage when a reranker is used, else the retriever's cosine.

    Out: ``{"retriever", "reranker", "weight", "retriever_path", "reranker_path", "parts",
    "fell_back", "notes"}`` — the loaded models (``None`` when ``load_models`` is False, or no
    reranker), ``weight`` (None = no blend: pass it to :func:`search_stack` as is), ``parts``
    (one line per part, for printing and results files), ``fell_back`` (the parts that fell back
    to a default because an earlier notebook's output is missing) and ``notes``. ``verbose``
    prints ``parts`` and ``fell_back``. Paths in the text are relative to the repository.
    """
    from . import config, models

    def rel(path):
        try:
            return str(Path(path).resolve().relative_to(config.ROOT.resolve()))
        except ValueError:
            return Path(path).name

    parts, fell_back, notes = {}, [], []
    dir01 = config.artifact_dir("01_finetune_embeddings", "model", profile, dataset)
    retriever_path, used = models.first_available(str(dir01), base_retriever)
    from_01 = used == str(dir01)
    parts["retriever"] = (f"notebook 01's fine-tuned embedder ({rel(dir01)})" if from_01 else
                          f"base {base_retriever} — fell back: no {rel(dir01)} (run notebook 01 in this profile)")
    if not from_01:
        fell_back.append("retriever")

    res02 = config.load_results("02_finetune_reranker", profile, dataset)
    dir02 = config.artifact_dir("02_finetune_reranker", "model", profile, dataset)
    chosen = (res02 or {}).get("models") or {}
    weight, reranker_path = None, None
    results_name = config.results_path("02_finetune_reranker", profile, dataset).name
    if "blend weight w" not in chosen:
        parts["reranker"] = f"none — fell back: no results/{results_name} with a blend weight (run notebook 02)"
        fell_back.append("reranker")
    elif not dir02.is_dir():
        parts["reranker"] = f"none — fell back: no {rel(dir02)} (run notebook 02 in this profile)"
        fell_back.append("reranker")
    elif float(chosen["blend weight w"]) <= 0:
        parts["reranker"] = "none: notebook 02 chose the retriever alone on dev (w = 0)"
    else:
        weight, reranker_path = float(chosen["blend weight w"]), str(dir02)
        parts["reranker"] = f"notebook 02's {chosen.get('best reranker', 'reranker')} ({rel(dir02)})"
        if chosen.get("retriever") != ("01_finetune_embeddings" if from_01 else base_retriever):
            notes.append(f"notebook 02 chose w on dev with the retriever {chosen.get('retriever')!r}, "
                         "not the one used here: the blend weight may not fit")
    if weight is None:
        parts["order"] = "the retriever's order"
    elif weight >= 1:
        parts["order"] = "the reranker's order (w = 1 on dev in notebook 02)"
    else:
        parts["order"] = (f"blend w × reranker + (1 − w) × retriever, scores min-max scaled per question, "
                          f"w = {weight:g} (chosen on dev in notebook 02)")
    parts["confidence"] = "the reranker's raw score" if weight else "the retriever's cosine similarity"

    stack = {"retriever": None, "reranker": None, "weight": weight, "retriever_path": retriever_path,
             "reranker_path": reranker_path, "parts": parts, "fell_back": fell_back, "notes": notes}
    if load_models:
        from sentence_transformers import CrossEncoder, SentenceTransformer

        stack["retriever"] = SentenceTransformer(retriever_path, device=None)
        stack["reranker"] = CrossEncoder(reranker_path, device=None) if reranker_path else None
    if verbose:
        for name, line in parts.items():
            print(f"{name + ':':<12}{line}")
        print(f"{'fell back:':<12}{', '.join(fell_back) or 'nothing (every part is the one chosen upstream)'}")
        for note in notes:
            print("note:", note)
    return stack


def search_stack(retriever, corpus: dict, queries: dict[str, str], candidates: int = 20,
                 reranker=None, batch_size: int = 64, encoded=None, weight: float | None = None,
                 return_scores: bool = False, show_progress_bar: bool = False):
    """Rank passages for each question with the search stack: dense retrieval of ``candidates``
    passages with the SentenceTransformer ``retriever``, re-ranked by the CrossEncoder
    ``reranker`` when one is given — in the reranker's order, or, with ``weight`` in (0, 1), by
    the blend ``rerankers.interpolate(retriever run, reranker run, weight)`` (notebook 02).

    In: models, corpus, ``{qid: question}``; ``encoded`` = a precomputed
    ``retrieval.encode_corpus`` pair (else the corpus is encoded here, once).
    Out: ``{qid: [doc_id, ...]}`` best first, ``candidates`` long; with ``return_scores`` also
    ``{qid: {doc_id: score}}``, the stack's confidence in each candidate: the reranker's raw score
    when there is a reranker, else the retriever's cosine.
    """
    from . import retrieval
    from .metrics import ranked
    from .rerankers import interpolate

    encoded = encoded or retrieval.encode_corpus(retriever, corpus, batch_size=batch_size,
                                                 show_progress_bar=show_progress_bar)
    run = retrieval.dense_search(retriever, encoded, queries, k=candidates, batch_size=batch_size)
    confidence = run
    if reranker is not None:
        reranked, _ = retrieval.rerank(reranker, corpus, queries, run, k=candidates)
        confidence = reranked
        run = reranked if weight is None or weight >= 1 else interpolate(run, reranked, weight)
    order = {q: ranked(run[q]) for q in queries}
    return (order, {q: dict(confidence[q]) for q in queries}) if return_scores else order


# --------------------------------------------------------------------------------- records
def question_order(qrels: dict, split: str, seed: int = 42) -> list[str]:
    """The seeded order in which ``generator_data.eval_records`` takes the questions of ``split``."""
    return seeded_order(qrels.get(split, {}), seed, salt=split)


def oos_order(out_of_scope: list[dict], split: str, seed: int = 42) -> list[dict]:
    """The seeded order in which the notebooks take the out-of-scope questions of ``split``."""
    by_id = {r["id"]: r for r in out_of_scope if r["split"] == split}
    return [by_id[i] for i in seeded_order(by_id, seed)]


def questions_to_rank(queries: dict, qrels: dict, out_of_scope: list[dict], sizes: dict[str, dict],
                      pool: float = 2.0, seed: int = 42) -> dict[str, str]:
    """The questions ``generator_data``'s record builders may need for ``sizes``, so that only those are searched.

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


#: Words that name the tool of each ``faqs`` source (case-insensitive; one-letter names match
#: case-sensitively). Sources not listed are named by their id without "-faq"/"faq".
FAQ_TOOL_WORDS = {
    "perlfaq": ("Perl", "CPAN"), "r-faq": ("R", "CRAN"), "curl-faq": ("curl", "libcurl"),
    "cryptsetup-faq": ("cryptsetup", "LUKS", "dm-crypt"), "debian-faq": ("Debian", "dpkg", "apt", "apt-get"),
    "sudo-troubleshooting": ("sudo",), "urxvt-faq": ("urxvt", "rxvt-unicode", "rxvt"),
}


def _names(word: str, text: str) -> bool:
    if len(word) == 1:
        return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text) is not None
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text, re.IGNORECASE) is not None


def faq_out_of_scope(queries: dict[str, str], query_meta: dict[str, dict]) -> list[dict]:
    """Out-of-scope questions for a Python-docs assistant, from the real questions of ``data/faqs``.

    Keeps a question when it names the tool its FAQ is about (:data:`FAQ_TOOL_WORDS`: "How do I
    sort a hash in Perl?") and does not mention Python — a generic FAQ question ("How do I sort an
    array?") could well be answered from Python's documentation, so it is not used. The split is
    the faqs split (by project: Perl, R, curl, cryptsetup in test; Debian in dev).
    In: faqs ``queries`` and ``query_meta`` (``data.load_queries``). Out: records
    ``{"id", "question", "split", "tool"}`` as in ``out_of_scope.jsonl``.
    """
    out = []
    for qid, text in queries.items():
        meta = query_meta.get(qid) or {}
        source = meta.get("source", "")
        words = FAQ_TOOL_WORDS.get(source) or (re.sub(r"-?faq$", "", source),)
        if not words[0] or re.search(r"python", text, re.IGNORECASE):
            continue
        if any(_names(w, text) for w in words):
            out.append({"id": qid, "question": text, "split": meta.get("split"), "tool": words[0]})
    return out


def write_generation_jsonl(path: str | Path, records: list[dict]) -> Path:
    """Write records as JSONL (one per line, UTF-8), atomically; read back with ``data.load_generation_jsonl``."""
    from .config import atomic_write_text

    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return Path(path)


def chat_example(record: dict, few_shot: bool | list[dict] = True, answer: str | None = None) -> dict:
    """A TRL prompt-completion example (conversational): ``{"prompt": messages, "completion":
    [assistant turn]}``. The completion is the record's reference answer unless ``answer`` is given."""
    prompt = build_messages(record["question"], [p["text"] for p in record["passages"]], few_shot=few_shot)
    return {"prompt": prompt,
            "completion": [{"role": "assistant", "content": record["answer"] if answer is None else answer}]}


# --------------------------------------------------------------------------------- the rule baseline
def rule_answer(record: dict, threshold: float, citation_first: bool = False) -> str:
    """The extractive rule baseline: refuse when the stack's confidence in Source 1 (its
    ``"score"``, kept by ``generator_data``'s records) is below ``threshold``; otherwise copy Source 1's
    object name and first sentence and cite ``[Source 1]`` (:func:`extractive_answer`)."""
    top = record["passages"][0]
    if top.get("score") is None:
        raise ValueError(f"record {record.get('id')!r} has no stack score on its passages: build the records "
                         "with generator_data's record builders (scores=...) from search_stack(..., return_scores=True)")
    return REFUSAL if top["score"] < threshold else extractive_answer(top["text"], 1, citation_first)


def choose_threshold(records: list[dict], citation_first: bool = False):
    """Pick :func:`rule_answer`'s threshold on ``records`` (dev): the one with the highest task
    success among the midpoints between consecutive Source-1 scores (plus one below all and one
    above all); ties go to the lowest (refuse as little as the data allow).

    Out: ``(threshold, table)``; ``table`` has one row per candidate threshold and the metrics of
    :func:`summarize` as columns.
    """
    import pandas as pd

    values = sorted({float(r["passages"][0]["score"]) for r in records})
    candidates = [values[0] - 1.0] + [(a + b) / 2 for a, b in zip(values, values[1:])] + [values[-1] + 1.0]
    rows = []
    for t in candidates:
        scored = [score_answer(rule_answer(r, t, citation_first), r) for r in records]
        rows.append({"threshold": t, **summarize(scored)})
    table = pd.DataFrame(rows)
    best = table["task success"].max()
    return float(table.loc[table["task success"] == best, "threshold"].min()), table


# --------------------------------------------------------------------------------- generation
def generate(model, tokenizer, prompts: list[list[dict]], max_new_tokens: int = 64,
             batch_size: int = 8, progress: bool | None = None, prefix: str = "", samples: int = 0,
             temperature: float = 1.0, top_p: float = 1.0, seed: int = 0,
             precision: str = "fp32") -> tuple[list, list, list[float]]:
    """Answers for chat prompts, in batches with left padding: greedy, or ``samples`` sampled ones.

    In: a causal LM and its tokenizer (with a chat template), a list of message lists
    (:func:`build_messages`), the generation limit, the batch size; ``progress``: a progress bar
    over the batches (default: ``config.show_progress()``, i.e. in live sessions only);
    ``prefix``: text the answer is made to start with (e.g. ``"[Source"`` to make the model answer
    rather than refuse), written after the assistant opening and kept at the start of each answer.
    Greedy (``samples=0``): prompts of similar length are batched together. ``samples=n``: ``n``
    answers per prompt drawn with ``temperature`` and ``top_p`` (``num_return_sequences=n``), torch
    seeded with ``seed`` and the prompts batched in the given order, so a seed fixes the draws.
    ``precision``: ``"bf16"`` generates under ``torch.autocast`` (``config.autocast``), ``"fp32"`` without.
    Out: ``(answers, new_token_counts, seconds)`` in the order of ``prompts`` (with ``samples``,
    ``answers[i]`` and ``new_token_counts[i]`` are lists of ``n``); ``seconds`` is each prompt's
    share of its batch's wall time.
    """
    import torch
    from tqdm.auto import tqdm

    from .config import autocast, show_progress

    texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) + prefix for p in prompts]
    order = list(range(len(texts))) if samples else sorted(range(len(texts)), key=lambda i: len(texts[i]))
    n = max(samples, 1)
    sampling = dict(do_sample=True, temperature=temperature, top_p=top_p, num_return_sequences=n) if samples else dict(do_sample=False)
    answers, counts, seconds = [None] * len(texts), [None] * len(texts), [0.0] * len(texts)
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    if samples:
        torch.manual_seed(seed)
    try:
        starts = range(0, len(order), batch_size)
        for start in tqdm(starts, desc="sampling" if samples else "generating", unit="batch",
                          disable=not (show_progress() if progress is None else progress)):
            idx = order[start:start + batch_size]
            batch = tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True,
                              add_special_tokens=False).to(model.device)
            t0 = time.perf_counter()
            with torch.no_grad(), autocast(precision):
                out = model.generate(**batch, max_new_tokens=max_new_tokens, **sampling,
                                     pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
            dt = (time.perf_counter() - t0) / len(idx)
            new = out[:, batch["input_ids"].shape[1]:]
            for j, i in enumerate(idx):
                texts_i, counts_i = [], []
                for row in new[j * n:(j + 1) * n]:  # generate returns the n answers of a prompt next to each other
                    ids = row.tolist()
                    k = ids.index(tokenizer.eos_token_id) + 1 if tokenizer.eos_token_id in ids else len(ids)
                    texts_i.append((prefix + tokenizer.decode(ids[:k], skip_special_tokens=True)).strip())
                    counts_i.append(k)
                answers[i], counts[i] = (texts_i, counts_i) if samples else (texts_i[0], counts_i[0])
                seconds[i] = dt
    finally:
        tokenizer.padding_side = side
    return answers, counts, seconds


def evaluate(model, tokenizer, records: list[dict], few_shot: bool | list[dict] = True,
             max_new_tokens: int = 64, batch_size: int = 8, progress: bool | None = None,
             precision: str = "fp32") -> dict:
    """Generate an answer for every record with the contract's prompt and score it.

    In: a causal LM + tokenizer, generation records, the prompt's few-shot setting
    (:func:`build_messages`), generation settings (``precision`` as in :func:`generate`).
    Out: ``{"metrics": summarize(...), "answers": [...], "scores": [...],
    "cost": {"prompt tokens per answer", "new tokens per answer", "seconds per answer"}}`` (the
    prompt tokens are what the model reads before it writes).
    """
    prompts = [build_messages(r["question"], [p["text"] for p in r["passages"]], few_shot=few_shot)
               for r in records]
    answers, counts, seconds = generate(model, tokenizer, prompts, max_new_tokens, batch_size, progress, precision=precision)
    scores = [score_answer(a, r) for a, r in zip(answers, records)]
    prompt_tokens = sum(len(tokenizer(tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True),
                                      add_special_tokens=False)["input_ids"]) for p in prompts)
    n = max(len(records), 1)
    return {"metrics": summarize(scores), "answers": answers, "scores": scores,
            "cost": {"prompt tokens per answer": prompt_tokens / n, "new tokens per answer": sum(counts) / n,
                     "seconds per answer": sum(seconds) / n}}


# --------------------------------------------------------------------------------- tables
def before_after(scores_by_system: dict[str, list[dict]], baseline: str, system: str, confidence: float = 0.95):
    """The closing table of a training notebook: one row per metric of :data:`METRICS`; columns
    ``baseline`` and ``system`` (each ``"value [low, high]"``, :func:`metrics_with_ci`) and, for the
    paired metrics (:data:`PAIRED_METRICS`), the difference in points with its 95% CI, the paired
    randomization test's p-value and ``metrics.verdict`` (:func:`paired_tests`)."""
    import pandas as pd

    from . import metrics as _metrics

    pair = {baseline: scores_by_system[baseline], system: scores_by_system[system]}
    ci = metrics_with_ci(pair, confidence)
    tests = paired_tests(pair, baseline, as_dict=True)[system]
    rows = {}
    for metric in METRICS:
        row = {}
        for name in pair:
            r = ci[(ci["system"] == name) & (ci["metric"] == metric)]
            row[name] = _ci_cell(*r[["value", "ci_low", "ci_high"]].iloc[0]) if len(r) else ""
        if metric in tests:
            t = tests[metric]
            row.update({"Δ (pts)": round(100 * t["delta"], 1),
                        "95% CI of Δ (pts)": f"[{100 * t['ci_low']:+.1f}, {100 * t['ci_high']:+.1f}]",
                        "p": round(t["p_value"], 4), "verdict": _metrics.verdict(t)})
        rows[metric] = row
    frame = pd.DataFrame.from_dict(rows, orient="index").fillna("")
    frame.index.name = f"{len(scores_by_system[baseline])} test questions"
    return frame
