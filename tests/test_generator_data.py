"""searchtune_utils.generator_data / generator_systems / generator_training: the generator's data
design (near-misses as they happen, minimal pairs, forced slots), the no-model baselines, the gate
and the decision AUC — on a hand-made corpus, no model."""
import math

import pytest

from searchtune_utils import generation as gen, generator_data as gd, generator_systems as gs, generator_training as gt
from searchtune_utils.generation import REFUSAL

CORPUS = {
    "floor": {"title": "math.floor(x, /)", "text": "Return the floor of x as an Integral. More text here."},
    "floor2": {"title": "math.floor (part 2)", "text": "Details about floor division and negative numbers."},
    "ceil": {"title": "math.ceil(x, /)", "text": "Return the ceiling of x as an Integral."},
    "trunc": {"title": "math.trunc(x, /)", "text": "Truncates the Real x to the nearest Integral toward 0."},
    "copy": {"title": "notes on rounding", "text": "As the docs say: return the floor of x as an Integral."},
    "fsum": {"title": "math.fsum(iterable, /)", "text": "Return an accurate floating-point sum of values."},
    "gcd": {"title": "math.gcd(*integers)", "text": "Return the greatest common divisor of the integers."},
    "isqrt": {"title": "math.isqrt(n, /)", "text": "Return the integer square root of n."},
}
SENTENCES = {"floor": "Return the floor of x as an Integral.", "ceil": "Return the ceiling of x as an Integral.",
             "trunc": "Truncates the Real x to the nearest Integral toward 0.",
             "fsum": "Return an accurate floating-point sum of values.", "gcd": "Return the greatest common divisor of the integers.",
             "isqrt": "Return the integer square root of n."}


def _split(golds, split="train"):
    queries = {f"q-{g}": f"how do I {SENTENCES[g].lower()}" for g in golds}
    qrels = {split: {f"q-{g}": {g: 1} for g in golds}}
    meta = {f"q-{g}": {"summary": SENTENCES[g]} for g in golds}
    others = [d for d in CORPUS]
    ranked = {f"q-{g}": [g] + [d for d in others if d != g] for g in golds}
    scores = {q: {d: 1.0 - 0.1 * i for i, d in enumerate(r)} for q, r in ranked.items()}
    return queries, qrels, meta, ranked, scores


def test_truly_answers_is_same_object_or_same_sentence_not_shared_words():
    sentence = SENTENCES["floor"]
    assert gd.truly_answers(CORPUS["floor2"], CORPUS["floor"], sentence)  # another part of the same object
    assert gd.truly_answers(CORPUS["copy"], CORPUS["floor"], sentence)  # states the answer's sentence
    assert not gd.truly_answers(CORPUS["ceil"], CORPUS["floor"], sentence)  # many shared words, another object


def test_source_text_is_title_and_first_sentence():
    assert gd.source_text(CORPUS["floor"]) == "math.floor(x, /)\nReturn the floor of x as an Integral."
    assert gd.source_text(CORPUS["floor"], max_words=4) == "math.floor(x, /)\nReturn the …"


def test_near_miss_as_it_happens_drops_only_true_answers():
    queries, qrels, meta, ranked, scores = _split(["floor"], "test")
    recs = gd.eval_records("test", {"unanswerable": 1}, CORPUS, queries, qrels, meta, [], ranked, scores)
    assert len(recs) == 1 and recs[0]["kind"] == "unanswerable" and recs[0]["answer"] == REFUSAL
    shown = [p["doc_id"] for p in recs[0]["passages"]]
    assert shown == ["ceil", "trunc", "fsum"]  # floor, floor2 (same object) and copy (same sentence) are out; ceil stays
    assert recs[0]["passages"][0]["score"] == pytest.approx(0.8)


def test_answerable_eval_record_keeps_the_stack_order_and_names_the_gold():
    queries, qrels, meta, ranked, scores = _split(["ceil"], "test")
    ranked["q-ceil"] = ["trunc", "ceil", "fsum", "gcd"]
    rec = gd.eval_records("test", {"answerable": 1}, CORPUS, queries, qrels, meta, [], ranked, scores)[0]
    assert rec["slot"] == 2 and rec["cited"] == [2]
    assert rec["answer"] == "[Source 2] math.ceil: Return the ceiling of x as an Integral."
    assert rec["gold_name"] == "math.ceil"


def test_minimal_pairs_are_adjacent_identical_but_one_passage_and_cycle_the_slot():
    golds = ["ceil", "trunc", "fsum", "gcd"]
    queries, qrels, meta, ranked, scores = _split(golds)
    recs = gd.minimal_pairs("train", 4, CORPUS, queries, qrels, meta, ranked, scores)
    assert len(recs) == 8
    slots = []
    for a, n in zip(recs[::2], recs[1::2]):
        assert a["pair"] == n["pair"] and a["answerable"] and not n["answerable"] and n["answer"] == REFUSAL
        diff = [i for i, (p, q) in enumerate(zip(a["passages"], n["passages"])) if p["doc_id"] != q["doc_id"]]
        assert diff == [a["slot"] - 1]
        gold = next(d for d in qrels["train"][a["qid"]])
        assert not any(gd.truly_answers(CORPUS[p["doc_id"]], CORPUS[gold], meta[a["qid"]]["summary"]) for p in n["passages"])
        slots.append(a["slot"])
    assert sorted(slots[:3]) == [1, 2, 3]


def test_force_slot_moves_the_answer_and_its_citation():
    queries, qrels, meta, ranked, scores = _split(["ceil"], "test")
    rec = gd.eval_records("test", {"answerable": 1}, CORPUS, queries, qrels, meta, [], ranked, scores)[0]
    moved = gd.force_slot(rec, 3)
    assert moved["passages"][2]["doc_id"] == "ceil" and moved["cited"] == [3] and moved["answer"].startswith("[Source 3] ")
    assert [p["doc_id"] for p in moved["passages"][:2]] == [p["doc_id"] for p in rec["passages"][1:]]
    assert gen.task_success(gen.score_answer(moved["answer"], moved))


def test_correct_needs_the_gold_name():
    queries, qrels, meta, ranked, scores = _split(["ceil"], "test")
    rec = gd.eval_records("test", {"answerable": 1}, CORPUS, queries, qrels, meta, [], ranked, scores)[0]
    assert gen.score_answer("[Source 1] math.ceil rounds up.", rec)["correct"]
    sentence_only = gen.score_answer("[Source 1] Return the ceiling of x as an integral.", rec)
    assert sentence_only["correct"] is False and sentence_only["correct (lenient)"]  # the strict scorer wants the name
    wrong = gen.score_answer("[Source 1] math.floor rounds down.", rec)
    assert wrong["correct"] is False and gen.error_kind(wrong, rec) == "cites the right source, names something else"
    assert wrong["correct (lenient)"] and gen.task_success(wrong, lenient=True) and not gen.task_success(wrong)


def test_a_name_that_is_a_prefix_of_the_gold_name_is_wrong():
    """notebook 04's example: the right sentence under the wrong method's name."""
    rec = {"id": "t1", "question": "how do I add a TarInfo object to an archive?", "answerable": True, "cited": [1],
           "kind": "answerable", "gold_name": "tarfile.TarFile.addfile",
           "passages": [{"text": "tarfile.TarFile.addfile(tarinfo, fileobj=None)\nAdd the TarInfo object tarinfo to the archive."},
                        {"text": "tarfile.TarFile.add(name, arcname=None)\nAdd the file name to the archive."}]}
    wrong = gen.score_answer("[Source 1] tarfile.TarFile.add: Add the TarInfo object `tarinfo' to the archive.", rec)
    assert wrong["correct"] is False and wrong["correct (lenient)"] is True
    right = gen.score_answer("[Source 1] tarfile.TarFile.addfile: Add the TarInfo object `tarinfo' to the archive.", rec)
    assert right["correct"] and gen.task_success(right)
    assert gen.score_answer("[Source 1] Use TARFILE.TARFILE.ADDFILE.", rec)["correct"]  # case ignored
    other = {**rec, "gold_name": "tarfile.TarFile.add"}  # and the longer name does not name the shorter one
    assert gen.score_answer("[Source 1] tarfile.TarFile.addfile: Add the TarInfo object.", other)["correct"] is False


def test_slices():
    queries, qrels, meta, ranked, scores = _split(["ceil", "floor"], "test")
    ranked["q-ceil"] = ["trunc", "ceil", "fsum"]
    recs = gd.eval_records("test", {"answerable": 1, "unanswerable": 1}, CORPUS, queries, qrels, meta, [], ranked, scores)
    names = [gd.slice_name(r) for r in recs]
    assert names[0] == "answerable, answer at Source 2-3" and names[1].startswith("near-miss")
    near = recs[1]
    looks_answered = {**near, "question": "how do I return the ceiling of x", "passages": [{"text": "Return the ceiling of x.", "score": -9.0}]}
    looks_unrelated = {**near, "question": "how do I return the ceiling of x", "passages": [{"text": "Sum of floats.", "score": 9.0}]}
    assert gd.slice_name(looks_answered) == gd.SLICES[2]   # by the words the sources share, whatever the stack's score
    assert gd.slice_name(looks_unrelated) == gd.SLICES[3]


def test_overlap_rule_answers_from_the_best_matching_source():
    rec = {"question": "how do I return the ceiling of x", "passages": [{"text": gd.source_text(CORPUS[d])} for d in ("fsum", "ceil", "gcd")],
           "answerable": True, "cited": [2], "kind": "answerable", "gold_name": "math.ceil"}
    assert gs.overlap_answer(rec, 0.5).startswith("[Source 2] math.ceil:")
    assert gs.overlap_answer(rec, 1.01) == REFUSAL
    assert gs.overlap_answer(rec, gs.choose_overlap_threshold([rec])).startswith("[Source 2]")  # dev says: answer it


def _rec(score, answerable, kind=None):
    return {"id": f"r{score}", "question": "q", "answerable": answerable, "cited": [1] if answerable else [],
            "kind": kind or ("answerable" if answerable else "unanswerable"), "gold_name": "math.ceil",
            "passages": [{"text": "math.ceil(x)\nReturn the ceiling of x.", "score": score}, {"text": "b\nc d", "score": 0.0}]}


def test_gate_and_band():
    good = "[Source 1] math.ceil: Return the ceiling of x."
    recs = [_rec(0.9, True), _rec(0.5, True), _rec(0.6, False), _rec(0.1, False)]
    free = [REFUSAL, good, REFUSAL, good]  # the model refuses a sure answer, answers a sure refusal
    forced = [good, None, good, None]  # a forced answer wherever the model refused
    told = gs.answers_when_told(free, forced)
    assert told == [good] * 4
    assert gs.gated_answers(recs, free, told, low=0.3, high=0.8) == [good, good, REFUSAL, REFUSAL]
    low, high, table = gs.choose_band(recs, free, told)
    assert table["task success"].max() == 1.0
    assert all(gen.task_success(gen.score_answer(a, r)) for a, r in zip(gs.gated_answers(recs, free, told, low, high), recs))


def test_decision_auc():
    recs = [_rec(0.9, True), _rec(0.5, True), _rec(0.6, False), _rec(0.1, False)]
    assert gt.decision_auc([-1, -2, 3, 4], recs) == 1.0
    assert gt.decision_auc([1, 2, -3, -4], recs) == 0.0
    assert math.isnan(gt.decision_auc([1, 2], recs[:2]))
    value, low, high = gt.decision_auc([-1, 2, 1, 4, -3, 5], recs + [_rec(0.2, True), _rec(0.3, False)], ci=True)
    assert low <= value <= high


def test_decide_moves_the_threshold_and_dev_picks_it():
    good = "[Source 1] math.ceil: Return the ceiling of x."
    recs = [_rec(0.9, True), _rec(0.5, True), _rec(0.6, False), _rec(0.1, False)]
    scores = [0.5, 1.0, 2.0, 3.0]  # every one leans to refusing, the answerable ones less
    free = [REFUSAL] * 4
    forced = [good] * 4
    assert gs.decide(recs, scores, free, forced, 0.0) == [REFUSAL] * 4
    assert gs.decide(recs, scores, free, forced, 1.5) == [good, good, REFUSAL, REFUSAL]
    t = gs.choose_decision_threshold(recs, scores, free, forced)
    assert 1.0 < t <= 2.0


def test_preference_pairs_from_mistakes_and_close_calls():
    golds = ["ceil", "trunc"]
    queries, qrels, meta, ranked, scores = _split(golds)
    recs = gd.minimal_pairs("train", 2, CORPUS, queries, qrels, meta, ranked, scores)
    answers = [REFUSAL, REFUSAL, recs[2]["answer"], REFUSAL]  # refuses the first answerable; right elsewhere
    lean = [0.2, 3.0, -0.1, 0.3]
    errors = [gen.error_kind(gen.score_answer(a, r), r) for a, r in zip(answers, recs)]
    pairs = gd.preference_pairs(recs, answers, lean, margin=0.5, errors=errors)
    kinds = [p["kind"] for p in pairs]
    assert kinds == ["own: refuses answerable", "close call: answerable", "close call: near-miss"]
    assert pairs[0]["chosen"] == recs[0]["answer"] and pairs[0]["rejected"] == REFUSAL
    assert pairs[1]["rejected"] == REFUSAL
    near = pairs[2]
    assert near["chosen"] == REFUSAL and near["rejected"].startswith(f"[Source {recs[2]['slot']}]")


def test_decision_auc_matches_sklearn_with_ties():
    from sklearn.metrics import roc_auc_score

    recs = [_rec(0.1 * i, i % 3 != 0) for i in range(12)]
    scores = [0.3, 0.3, -1.0, 2.0, 0.3, 0.5, 1.0, -2.0, 0.5, 0.0, 0.0, 4.0]
    labels = [0 if r["answerable"] else 1 for r in recs]
    assert gt.decision_auc(scores, recs) == pytest.approx(roc_auc_score(labels, scores))


def test_shown_record_takes_whatever_the_stack_shows():
    scores = {"floor": 0.9, "ceil": 0.5, "trunc": 0.2, "copy": 0.1}
    shown = gd.shown_record("r", "round down?", ["ceil", "floor", "trunc"], "floor", CORPUS, SENTENCES["floor"], scores)
    assert shown["kind"] == "answerable" and shown["slot"] == 2 and shown["cited"] == [2]
    assert shown["answer"] == "[Source 2] math.floor: Return the floor of x as an Integral."
    assert shown["passages"][0] == {"doc_id": "ceil", "text": gd.source_text(CORPUS["ceil"]), "score": 0.5}
    two = gd.shown_record("r", "round down?", ["copy", "floor"], "floor", CORPUS, SENTENCES["floor"])  # answerable() says None here
    assert two["kind"] == "answerable" and two["cited"] == [1, 2] and two["answer"].startswith("[Source 2]")
    other = gd.shown_record("r", "round down?", ["ceil", "floor2"], "floor", CORPUS, SENTENCES["floor"])
    assert other["kind"] == "answerable" and other["slot"] == 0 and other["cited"] == [2]
    lost = gd.shown_record("r", "round down?", ["ceil", "trunc"], "floor", CORPUS, SENTENCES["floor"])
    assert lost["kind"] == "unanswerable" and lost["answer"] == REFUSAL
    assert gd.shown_record("r", "perl hash?", ["ceil"], None, CORPUS, "")["kind"] == "out_of_scope"
    good = "[Source 2] math.floor: Return the floor of x as an Integral."
    assert gen.task_success(gen.score_answer(good, shown)) and not gen.task_success(gen.score_answer(good, lost))


def test_forced_answers_only_where_the_model_refused(monkeypatch):
    recs = [_rec(0.9, True), _rec(0.5, True), _rec(0.1, False)]
    calls = []

    def fake_generate(model, tok, prompts, max_new_tokens=64, batch_size=8, progress=None, prefix="", precision="fp32"):
        calls.append((len(prompts), prefix, precision))
        return [prefix + " 1] forced"] * len(prompts), [3] * len(prompts), [0.0] * len(prompts)

    monkeypatch.setattr(gen, "generate", fake_generate)
    out = gs.forced_answers(None, None, recs, [REFUSAL, "[Source 1] math.ceil: x.", REFUSAL], precision="bf16")
    assert out == ["[Source 1] forced", None, "[Source 1] forced"] and calls == [(2, "[Source", "bf16")]
    assert gs.forced_answers(None, None, recs[:1], ["[Source 1] a."]) == [None] and len(calls) == 1


def test_decision_auc_difference_is_paired_and_signed():
    recs = [_rec(0.1, True), _rec(0.2, True), _rec(0.3, False), _rec(0.4, False)] * 10
    perfect, useless = [-1, -2, 3, 4] * 10, [1, 1, 1, 1] * 10
    out = gt.decision_auc_difference(perfect, useless, recs)
    assert out["after"] == 1.0 and out["before"] == 0.5 and out["delta"] == pytest.approx(0.5) and out["n"] == 40
    assert 0 < out["ci_low"] <= 0.5 <= out["ci_high"]
    back = gt.decision_auc_difference(useless, perfect, recs)
    assert back["delta"] == pytest.approx(-0.5) and back["ci_high"] < 0
    same = gt.decision_auc_difference(perfect, perfect, recs)
    assert same["delta"] == 0 and same["ci_low"] == same["ci_high"] == 0
    with pytest.raises(ValueError, match="one each per item"):
        gt.decision_auc_difference(perfect[:3], useless, recs)
