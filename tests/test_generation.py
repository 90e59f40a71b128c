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


def test_build_datasets_kinds_grounding_and_jsonl(tmp_path):
    out = gen.build_datasets(CORPUS, QUERIES, QRELS, META, OOS_RECS, RANKED,
                             sizes={"train": {"answerable": 1, "unanswerable": 1},
                                    "test": {"answerable": 1, "out_of_scope": 1}}, k=3, max_words=20)
    train, test = out["train"], out["test"]
    assert [r["kind"] for r in train] == ["answerable", "unanswerable"]
    ans = train[0]
    gold_pos = ans["cited"][0]
    assert ans["passages"][gold_pos - 1]["doc_id"] == next(iter(QRELS["train"][ans["id"].split("-")[-1]]))
    assert gen.score_answer(ans["answer"], ans)["faithfulness"] == 1.0
    un = train[1]
    assert un["answer"] == REFUSAL and not un["answerable"] and un["cited"] == []
    # test: gold ranked first by the stack, kept in the stack's order
    assert test[0]["cited"] == [1] and test[0]["passages"][0]["doc_id"] == "sqrt"
    assert test[1]["kind"] == "out_of_scope" and test[1]["answer"] == REFUSAL
    path = gen.write_generation_jsonl(tmp_path / "test.jsonl", test)
    assert [r["id"] for r in data.load_generation_jsonl(path)] == [r["id"] for r in test]
    ex = gen.chat_example(test[0])
    assert ex["completion"] == [{"role": "assistant", "content": test[0]["answer"]}]
    assert ex["prompt"][-1]["role"] == "user"


def test_unanswerable_rows_never_show_the_gold_passage():
    out = gen.build_datasets(CORPUS, QUERIES, QRELS, META, [], RANKED,
                             sizes={"train": {"answerable": 0, "unanswerable": 2}}, k=3, max_words=None)
    for rec in out["train"]:
        qid = rec["id"].split("-", 2)[-1]
        gold = next(iter(QRELS["train"][qid]))
        assert gold not in [p["doc_id"] for p in rec["passages"]]


def test_corruptions_break_the_contract_as_named():
    assert gen.score_answer(gen.corrupt_wrong_source(RECORD), RECORD)["correct"] is False
    assert not gen.parse_answer(gen.corrupt_no_citation(RECORD), 3)["compliant"]
    assert gen.score_answer(gen.corrupt_unsupported(RECORD), RECORD)["faithfulness"] < 1.0
    assert gen.parse_answer(gen.corrupt_false_refusal(RECORD), 3)["refusal"]
    anyway = gen.corrupt_answer_anyway(OOS)
    assert gen.parse_answer(anyway, 3)["compliant"] and not gen.parse_answer(anyway, 3)["refusal"]
    for name, fn in gen.CORRUPTIONS.items():  # each kind applies to one side only
        assert (fn(RECORD) is None) != (fn(OOS) is None), name
    json.dumps(gen.METRICS)


def test_questions_to_rank_covers_what_build_datasets_uses():
    sizes = {"train": {"answerable": 1, "unanswerable": 1}, "test": {"answerable": 1, "out_of_scope": 1}}
    wanted = gen.questions_to_rank(QUERIES, QRELS, OOS_RECS, sizes, pool=2.0)
    assert set(wanted) == {"q1", "q3", "q2", "o1"}
    out = gen.build_datasets(CORPUS, QUERIES, QRELS, META, OOS_RECS, {q: RANKED[q] for q in wanted}, sizes, k=3)
    assert {r["qid"] for recs in out.values() for r in recs} <= set(wanted)
    again = gen.build_datasets(CORPUS, QUERIES, QRELS, META, OOS_RECS, RANKED, {"train": {"answerable": 2}},
                               k=3, skip={r["qid"] for r in out["train"]})
    assert not {r["qid"] for r in again["train"]} & {r["qid"] for r in out["train"]}


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
