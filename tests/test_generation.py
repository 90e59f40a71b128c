"""searchtune_utils.generation: the generator contract, on hand-written good and bad answers."""
import json

import pytest

from searchtune_utils import data, generation as gen
from searchtune_utils.generation import REFUSAL

PASSAGES = [
    {"doc_id": "d1", "text": "math.ceil(x, /)\nReturn the ceiling of x as an Integral."},
    {"doc_id": "d2", "text": "math.floor(x, /)\nReturn the floor of x as an Integral."},
    {"doc_id": "d3", "text": "math.trunc(x, /)\nTruncates the Real x to the nearest Integral toward 0."},
]
RECORD = {"id": "r1", "question": "how do I round down?", "passages": PASSAGES, "answerable": True,
          "answer": "math.floor: Return the floor of x as an Integral [Source 2].", "cited": [2], "kind": "answerable"}
OOS = {"id": "r2", "question": "How do I center a div in CSS?", "passages": PASSAGES, "answerable": False,
       "answer": REFUSAL, "cited": [], "kind": "out_of_scope"}


@pytest.mark.parametrize("answer", [
    "math.floor: Return the floor of x as an Integral [Source 2].",
    "Use math.floor [Source 2], not math.ceil [Source 1].",
    REFUSAL,
    REFUSAL.rstrip(".").upper(),  # case and the final full stop do not matter
    "  " + REFUSAL + "\n",
])
def test_good_answers_are_compliant(answer):
    parsed = gen.parse_answer(answer, n_sources=3)
    assert parsed["compliant"], parsed["problems"]


@pytest.mark.parametrize("answer, problem", [
    ("", "empty answer"),
    ("math.floor returns the floor of x.", "no [Source N] citation"),
    ("math.floor returns the floor of x (Source 2).", "malformed citation"),
    ("math.floor returns the floor of x [source 2].", "malformed citation"),
    ("math.floor returns the floor of x [2].", "malformed citation"),
    ("math.floor returns the floor of x, see Source 2.", "malformed citation"),
    ("math.floor returns the floor [Source 2] [Sources 1, 3].", "malformed citation"),
    ("math.floor returns the floor of x [Source 4].", "cites a source that does not exist"),
    ("math.floor returns the floor of x [Source 0].", "cites a source that does not exist"),
    ("[Source 2]", "no answer text besides the citations"),
    ("Sorry. " + REFUSAL, "refusal mixed with other text"),
    ("math.floor " + "word " * 60 + "[Source 2].", "too long"),
])
def test_bad_answers_are_flagged(answer, problem):
    parsed = gen.parse_answer(answer, n_sources=3)
    assert not parsed["compliant"]
    assert any(p.startswith(problem) for p in parsed["problems"]), parsed["problems"]


def test_citations_are_parsed_in_order_once():
    parsed = gen.parse_answer("a b [Source 3] c [Source 1] d [Source 3].", n_sources=3)
    assert parsed["citations"] == [3, 1]
    assert "[Source" not in parsed["body"]


def test_code_indexing_is_not_a_malformed_citation():
    assert gen.parse_answer("Use args[0] to get the first item [Source 1].", 3)["compliant"]


def test_score_answer_correct_wrong_and_refused():
    good = gen.score_answer("math.floor: Return the floor of x as an Integral [Source 2].", RECORD)
    assert good["compliant"] and good["correct"] and good["faithfulness"] == 1.0 and not good["extra_citations"]
    wrong = gen.score_answer("math.floor: Return the floor of x [Source 1].", RECORD)
    assert wrong["compliant"] and wrong["correct"] is False and wrong["extra_citations"]
    refused = gen.score_answer(REFUSAL, RECORD)
    assert refused["refusal"] and refused["correct"] is False and refused["faithfulness"] is None
    oos = gen.score_answer(REFUSAL, OOS)
    assert oos["refusal"] and oos["correct"] is None and oos["kind"] == "out_of_scope"


def test_faithfulness_counts_unsupported_words():
    hallucinated = gen.score_answer("math.floor: Return the floor of x [Source 2]. It was added in Python 3.13.", RECORD)
    assert 0 < hallucinated["faithfulness"] < 1
    uncited = gen.score_answer("math.floor returns the floor of x.", RECORD)
    assert uncited["faithfulness"] == 0.0  # cites nothing, so nothing supports it
    assert gen.support("", ["anything"]) is None


def test_summarize_groups():
    scores = [gen.score_answer(RECORD["answer"], RECORD), gen.score_answer(REFUSAL, RECORD),
              gen.score_answer(REFUSAL, OOS), gen.score_answer("math.floor [Source 2] floors.", OOS)]
    m = gen.summarize(scores)
    assert m["format compliance"] == 1.0
    assert m["false refusals (answerable)"] == 0.5
    assert m["refusal (out-of-scope)"] == 0.5
    assert m["cited-source correctness"] == 1.0  # over answered answerable questions only
    assert "refusal (answer not in sources)" not in m  # no such question in the list
    assert set(m) <= set(gen.METRICS)
    assert [gen.task_success(s) for s in scores] == [True, False, True, False]
    assert m["task success"] == 0.5


def test_messages_number_sources_and_end_with_user():
    msgs = gen.build_messages("q?", ["first", "second"], few_shot=True)
    assert msgs[0]["role"] == "system" and msgs[-1]["role"] == "user"
    assert "[Source 1] first" in msgs[-1]["content"] and "[Source 2] second" in msgs[-1]["content"]
    assert msgs[-1]["content"].endswith("Question: q?")
    assert len(gen.build_messages("q?", ["p"], few_shot=False)) == 2
    for ex in gen.FEW_SHOT:  # the worked examples obey the contract themselves
        assert gen.parse_answer(ex["answer"], len(ex["passages"]))["compliant"]


def test_reference_answer_is_grounded_and_compliant():
    ans = gen.reference_answer("math.floor(x, /)", "Return the floor of x as an Integral.", 2)
    assert ans == "math.floor: Return the floor of x as an Integral [Source 2]."
    assert gen.score_answer(ans, RECORD)["faithfulness"] == 1.0
    assert gen.truncate_words("a b c d", 2) == "a b …" and gen.truncate_words("a b", 5) == "a b"


CORPUS = {
    "floor": {"title": "math.floor(x, /)", "text": "Return the floor of x as an Integral. More words here."},
    "ceil": {"title": "math.ceil(x, /)", "text": "Return the ceiling of x as an Integral."},
    "trunc": {"title": "math.trunc(x, /)", "text": "Truncates the Real x to the nearest Integral toward 0."},
    "sqrt": {"title": "math.sqrt(x, /)", "text": "Return the square root of x."},
}
QUERIES = {"q1": "how do I round down", "q2": "how do I get a square root", "q3": "round up?"}
QRELS = {"train": {"q1": {"floor": 1}, "q3": {"ceil": 1}}, "test": {"q2": {"sqrt": 1}}}
META = {"q1": {"summary": "Return the floor of x as an Integral."}, "q2": {"summary": "Return the square root of x."},
        "q3": {"summary": "Return the ceiling of x as an Integral."}}
RANKED = {"q1": ["ceil", "trunc", "floor", "sqrt"], "q2": ["sqrt", "floor", "ceil", "trunc"],
          "q3": ["ceil", "floor", "trunc", "sqrt"], "o1": ["sqrt", "trunc", "ceil", "floor"]}
OOS_RECS = [{"id": "o1", "question": "How do I center a div in CSS?", "split": "test"}]


def test_metrics_table_is_json():
    json.dumps(gen.METRICS)


def test_questions_to_rank_takes_the_first_questions_of_each_split_with_a_margin(tmp_path):
    sizes = {"train": {"answerable": 1, "unanswerable": 1}, "test": {"answerable": 1, "out_of_scope": 1}}
    wanted = gen.questions_to_rank(QUERIES, QRELS, OOS_RECS, sizes, pool=2.0)
    assert set(wanted) == {"q1", "q3", "q2", "o1"} and wanted["o1"] == OOS_RECS[0]["question"]
    train_order = gen.question_order(QRELS, "train")
    assert set(train_order[: int(2.0 * 2) + 1]) <= set(wanted)
    assert gen.questions_to_rank(QUERIES, QRELS, OOS_RECS, {"train": {"answerable": 0}}, pool=2.0) == {train_order[0]: QUERIES[train_order[0]]}
    recs = [{"id": "r1", "question": "q?", "passages": [{"text": "a"}], "answerable": False, "answer": REFUSAL,
             "cited": [], "kind": "out_of_scope"}]
    path = gen.write_generation_jsonl(tmp_path / "test.jsonl", recs)
    assert [r["id"] for r in data.load_generation_jsonl(path)] == ["r1"]


def test_generate_keeps_order_and_counts_tokens():
    torch = pytest.importorskip("torch")
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from searchtune_utils import models

    try:
        tok = AutoTokenizer.from_pretrained(models.resolve_model("smollm2-135m-instruct"))
    except models.ModelNotAvailableError as exc:
        pytest.skip(str(exc))
    torch.manual_seed(0)
    tiny = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                        num_attention_heads=2, num_key_value_heads=1, eos_token_id=tok.eos_token_id,
                                        pad_token_id=tok.pad_token_id))
    prompts = [gen.build_messages("q?", ["a much longer passage " * 5], few_shot=False),
               gen.build_messages("q?", ["short"], few_shot=False)]
    answers, counts, seconds = gen.generate(tiny, tok, prompts, max_new_tokens=5, batch_size=2)
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
    assert all(1 <= c <= 5 for c in counts) and all(s >= 0 for s in seconds)
    alone, _, _ = gen.generate(tiny, tok, prompts[1:], max_new_tokens=5, batch_size=1)
    assert alone[0] == answers[1]  # left padding: batching does not change a greedy answer
    assert tok.padding_side == AutoTokenizer.from_pretrained(models.resolve_model("smollm2-135m-instruct")).padding_side
    ev = gen.evaluate(tiny, tok, [RECORD, OOS], few_shot=False, max_new_tokens=5)
    assert set(ev) == {"metrics", "answers", "scores", "cost"} and len(ev["scores"]) == 2
    # sampling: n answers per prompt, in the prompts' order; the seed fixes the draws
    drawn, drawn_counts, _ = gen.generate(tiny, tok, prompts, max_new_tokens=5, batch_size=2, samples=3, seed=1)
    assert [len(d) for d in drawn] == [3, 3] and all(isinstance(a, str) for d in drawn for a in d)
    assert all(1 <= c <= 5 for cs in drawn_counts for c in cs)
    again, _, _ = gen.generate(tiny, tok, prompts, max_new_tokens=5, batch_size=2, samples=3, seed=1)
    assert again == drawn
    other = [gen.generate(tiny, tok, prompts, max_new_tokens=5, batch_size=2, samples=3, seed=s)[0] for s in (2, 3)]
    assert any(o != drawn for o in other)  # a different seed draws differently (tiny random model: near-uniform)


# --------------------------------------------------------------------------------- stack, rule baseline, uncertainty
def test_citation_first_reference_is_compliant_and_grounded():
    ans = gen.reference_answer("math.floor(x, /)", "Return the floor of x as an Integral.", 2, citation_first=True)
    assert ans == "[Source 2] math.floor: Return the floor of x as an Integral."
    scored = gen.score_answer(ans, RECORD)
    assert scored["compliant"] and scored["correct"] and scored["faithfulness"] == 1.0
    assert gen.extractive_answer(PASSAGES[1]["text"], 2) == RECORD["answer"]
    for ex in gen.FEW_SHOT_CITATION_FIRST:
        assert gen.parse_answer(ex["answer"], len(ex["passages"]))["compliant"]


def _scored(record, scores):
    return {**record, "passages": [{**p, "score": s} for p, s in zip(record["passages"], scores)]}


def test_rule_answer_copies_source_1_or_refuses_below_the_threshold():
    rec = _scored({**RECORD, "cited": [1]}, [2.0, 1.0, 0.5])
    assert gen.rule_answer(rec, threshold=1.5) == "math.ceil: Return the ceiling of x as an Integral [Source 1]."
    assert gen.rule_answer(rec, threshold=2.5) == REFUSAL
    assert gen.rule_answer(rec, 1.5, citation_first=True).startswith("[Source 1] math.ceil:")
    with pytest.raises(ValueError, match="no stack score"):
        gen.rule_answer(RECORD, 0.0)


def test_choose_threshold_separates_answerable_from_refusals_on_dev():
    answerable = [_scored({**RECORD, "id": f"a{i}", "cited": [1]}, [s, 0, 0]) for i, s in enumerate((3.0, 4.0))]
    refuse = [_scored({**OOS, "id": f"o{i}"}, [s, 0, 0]) for i, s in enumerate((1.0, 2.0))]
    threshold, table = gen.choose_threshold(answerable + refuse)
    assert threshold == 2.5
    assert table["task success"].max() == 1.0 and set(table["threshold"]) >= {0.0, 2.5, 5.0}


def test_faq_out_of_scope_keeps_questions_that_name_their_tool():
    queries = {"a": "How do I sort a hash in Perl?", "b": "How do I sort an array?", "c": "What is R?",
               "d": "Can I call Perl from Python?", "e": "Is there an r-mode?", "f": "How does git gc work?"}
    meta = {"a": {"source": "perlfaq", "split": "test"}, "b": {"source": "perlfaq", "split": "test"},
            "c": {"source": "r-faq", "split": "test"}, "d": {"source": "perlfaq", "split": "test"},
            "e": {"source": "r-faq", "split": "test"}, "f": {"source": "gitfaq", "split": "train"}}
    out = gen.faq_out_of_scope(queries, meta)
    assert [r["id"] for r in out] == ["a", "c", "f"]
    assert out[2] == {"id": "f", "question": "How does git gc work?", "split": "train", "tool": "git"}


SCORES = [gen.score_answer(RECORD["answer"], RECORD), gen.score_answer(REFUSAL, RECORD),
          gen.score_answer(REFUSAL, OOS), gen.score_answer("math.floor [Source 2] floors.", OOS)]


def test_per_question_means_equal_summarize():
    table = gen.per_question(SCORES, ids=["a", "b", "c", "d"])
    assert list(table.index) == ["a", "b", "c", "d"] and list(table.columns) == list(gen.METRICS)
    summary = gen.summarize(SCORES)
    assert {m: table[m].mean() for m in summary} == pytest.approx(summary)
    assert table["false refusals (answerable)"].isna().tolist() == [False, False, True, True]


def test_rate_ci_wilson_for_shares_and_bootstrap_for_faithfulness():
    from searchtune_utils.metrics import rate_ci

    mean, low, high, n = rate_ci([1.0] * 20)
    assert (mean, high, n) == (1.0, 1.0, 20) and 0.8 < low < 0.9  # Wilson: not a degenerate [1, 1]
    mean, low, high, n = rate_ci([0.5, 1.0, 0.75, float("nan")])
    assert n == 3 and low <= mean <= high
    assert rate_ci([1.0])[1] != rate_ci([1.0])[1]  # NaN bound for one question
    table = gen.metrics_with_ci({"x": SCORES, "y": SCORES[::-1]})
    bounded = table.dropna()
    assert set(table["system"]) == {"x", "y"} and (bounded["ci_low"] <= bounded["value"]).all()
    text = gen.ci_text(table)
    assert "task success (4 q)" in text.index and text.loc["task success (4 q)", "x"].startswith("0.50 [")


def test_paired_tests_and_tables_by_kind():
    better = [gen.score_answer(RECORD["answer"], RECORD)] * 2 + [gen.score_answer(REFUSAL, OOS)] * 2
    systems = {"base": SCORES, "new": better}
    table = gen.paired_tests(systems, "base")
    assert ("task success (4 q)", "new") in table.index
    numbers = gen.paired_tests(systems, "base", as_dict=True)
    assert numbers["new"]["task success"]["delta"] == pytest.approx(0.5)
    assert "refusal (answer not in sources)" not in numbers["new"]  # no such question
    kinds = gen.task_success_by_kind(systems)
    assert list(kinds.index) == ["answerable (2 q)", "out-of-scope (2 q)", "all (4 q)"]
    assert kinds.loc["all (4 q)", "new"].startswith("1.00")
    closing = gen.before_after(systems, "base", "new")
    assert closing.loc["task success", "Δ (pts)"] == 50.0 and closing.loc["faithfulness", "p"] == ""


def test_error_kind_names_each_mistake():
    assert gen.error_kind(SCORES[0], RECORD) is None
    assert gen.error_kind(SCORES[1], RECORD) == "refuses answerable"
    assert gen.error_kind(gen.score_answer("math.floor: Return the floor of x [Source 1].", RECORD), RECORD) == \
        "right words, wrong [Source N]"
    assert gen.error_kind(gen.score_answer("math.ceil: Return the ceiling [Source 1].", RECORD), RECORD) == \
        "answered from another passage"
    assert gen.error_kind(SCORES[3], OOS) == "answers out-of-scope"
    near = {**OOS, "kind": "unanswerable"}
    assert gen.error_kind(gen.score_answer(RECORD["answer"], near), near) == "answers near-miss"
    assert gen.error_kind(gen.score_answer("floor", RECORD), RECORD) == "wrong format"


class _Encoder:
    """A stand-in SentenceTransformer: fixed 2-d vectors per text."""
    VECS = {"q": [1.0, 0.0]}

    def _vec(self, text):
        import torch
        return torch.tensor(self.VECS.get(text, [0.0, 1.0]) if text in self.VECS else
                            [1.0 / (1 + len(text) % 7), 1.0], dtype=torch.float32)

    def encode_query(self, texts, **kw):
        import torch
        return torch.nn.functional.normalize(torch.stack([self._vec(t) for t in texts]), dim=1)

    encode_document = encode_query


class _Reranker:
    def predict(self, pairs, **kw):
        import numpy as np
        return np.array([float(len(p)) for _, p in pairs])  # longer passage = more relevant


def test_search_stack_applies_the_blend_and_returns_the_rerankers_scores():
    from searchtune_utils import retrieval, rerankers
    from searchtune_utils.metrics import ranked as order

    queries = {"x": "q"}
    dense = retrieval.dense_search(_Encoder(), CORPUS, queries, k=4)
    plain = gen.search_stack(_Encoder(), CORPUS, queries, candidates=4)
    assert plain["x"] == order(dense["x"])
    rr, scores = gen.search_stack(_Encoder(), CORPUS, queries, candidates=4, reranker=_Reranker(), return_scores=True)
    assert scores["x"] == {d: float(len(retrieval.passage_text(CORPUS[d]))) for d in CORPUS}
    assert rr["x"] == order(scores["x"])  # the reranker's order, w = None
    blend = gen.search_stack(_Encoder(), CORPUS, queries, candidates=4, reranker=_Reranker(), weight=0.3)
    assert blend["x"] == order(rerankers.interpolate(dense, {"x": scores["x"]}, 0.3)["x"])


def test_load_search_stack_reads_notebook_02s_choice_and_says_what_fell_back(tmp_path, monkeypatch, capsys):
    from searchtune_utils import config

    monkeypatch.setattr(config, "ARTIFACTS_DIR", tmp_path / "artifacts")
    monkeypatch.setattr(config, "RESULTS_DIR", tmp_path / "results")
    stack = gen.load_search_stack("smoke", load_models=False)
    assert stack["fell_back"] == ["retriever", "reranker"] and stack["weight"] is None
    assert "fell back" in capsys.readouterr().out
    (config.artifact_dir("02_finetune_reranker", "model", "smoke")).mkdir(parents=True)
    config.save_results("02_finetune_reranker", "smoke", {}, precision="fp32", models={"retriever": "minilm", "best reranker": "ListNet",
                                                                      "blend weight w": 0.3})
    stack = gen.load_search_stack("smoke", load_models=False, verbose=False)
    assert stack["weight"] == 0.3 and stack["fell_back"] == ["retriever"] and stack["notes"] == []
    assert "w = 0.3" in stack["parts"]["order"] and stack["parts"]["confidence"] == "the reranker's raw score"
    config.save_results("02_finetune_reranker", "smoke", {}, precision="fp32", models={"retriever": "minilm", "blend weight w": 0.0})
    stack = gen.load_search_stack("smoke", load_models=False, verbose=False)
    assert stack["weight"] is None and stack["reranker_path"] is None and "w = 0" in stack["parts"]["reranker"]
