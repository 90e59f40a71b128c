"""Query rewriting helpers (notebook 05): raw queries, PRF, cleaning, the reward, DPO pairs."""
import pytest

from searchtune_utils import rewriting as rw

CORPUS_TEXTS = [
    "abc.ABCMeta.register(cls, subclass)\nRegister a virtual subclass of an ABC.",
    "os.getcwd()\nReturn a string representing the current working directory.",
    "os.path.join(a, *p)\nJoin two or more pathname components.",
    "math.floor(x)\nReturn the floor of x as an Integral.",
    "math.ceil(x)\nReturn the ceiling of x as an Integral.",
]
IDF = rw.idf_table(CORPUS_TEXTS)


def test_idf_rare_words_weigh_more():
    assert IDF["virtual"] > IDF["return"] > 0
    assert rw.word_idf("zzzunseen", IDF) > max(IDF.values())     # unknown word: highest IDF
    assert rw.word_idf("os.path", IDF) == pytest.approx(IDF["path"])  # dotted name: rarest part


def test_raw_query_keeps_highest_idf_content_words_in_question_order():
    q = "How do I register a virtual subclass of an ABC?"
    assert rw.content_words(q) == ["register", "virtual", "subclass", "abc"]
    # all four are in one passage (same IDF): the first three by position, written in order
    assert rw.raw_query(q, IDF, max_words=3) == "register virtual subclass"
    assert rw.raw_query("what is the current working directory?", IDF, 2) == "current working"
    # a word the corpus never uses ranks first (rare words are what people who know them type)
    assert rw.raw_query("which function returns the current working directory?", IDF, 2) == "returns current"
    assert rw.raw_query("what is the floor?", IDF, 3) == "floor"
    assert rw.raw_query("What is this?", IDF, 3) == "what"            # no content word: never empty


def test_raw_query_is_deterministic_and_short():
    q = "how can I wrap coroutine or an awaitable in a future with asyncio quickly please"
    outs = {rw.raw_query(q, IDF, 3) for _ in range(5)}
    assert len(outs) == 1
    assert 1 <= len(outs.pop().split()) <= 3


def test_raw_queries_no_text_shared_between_splits():
    queries = {"t1": "how to register a virtual subclass", "d1": "register a virtual subclass?",
               "r1": "register a virtual subclass in math", "r2": "join path components"}
    qrels = {"train": {"r1": {"x": 1}, "r2": {"y": 1}}, "dev": {"d1": {"z": 1}}, "test": {"t1": {"w": 1}}}
    raw, dropped = rw.raw_queries(queries, qrels, IDF, max_words=3)
    assert list(raw) == ["train", "dev", "test"]
    assert raw["test"] == {"t1": "register virtual subclass"}       # test is served first, kept whole
    assert dropped["dev"] == ["d1"] and dropped["train"] == []      # dev collides and cannot be lengthened
    assert raw["train"]["r1"] == "register virtual subclass math"   # lengthened by one word to stay unique
    rw.check_raw_leakage(raw)
    with pytest.raises(ValueError, match="in both"):
        rw.check_raw_leakage({"train": {"a": "x y"}, "test": {"b": "X  y"}})


def test_prf_adds_heaviest_feedback_terms_not_in_query():
    feedback = [("floor integral floor rounding", 2.0), ("ceiling integral", 1.0)]
    terms = rw.prf_terms("floor", feedback, n_terms=2)
    # integral: 2/3*1/4 + 1/3*1/2 = 1/3 ; rounding: 2/3*1/4 = 1/6 ; ceiling: 1/3*1/2 = 1/6 (alphabetical tie)
    assert terms == ["integral", "ceiling"]
    assert rw.prf_expand("floor", feedback, n_terms=2) == "floor integral ceiling"
    assert rw.prf_expand("floor", [], n_terms=2) == "floor"
    run = {"q": {"d4": 3.0, "d5": 1.0}}
    corpus = {"d4": {"title": "math.floor(x)", "text": "Return the floor of x."}, "d5": {"title": "", "text": "ceiling"}}
    assert rw.prf_queries({"q": "floor"}, run, corpus, fb_docs=1, n_terms=1) == {"q": "floor math"}


def test_clean_rewrite():
    assert rw.clean_rewrite('Rewritten query: "how do I join paths os.path.join"\nmore text') == \
        "how do I join paths os.path.join"
    assert rw.clean_rewrite("  - Query: floor of x  ") == "floor of x"
    assert rw.clean_rewrite("\n\n") == ""
    assert rw.clean_rewrite("a b c d e", max_words=3) == "a b c"


def test_repetition_and_stats():
    assert rw.repetition_rate("a b c") == 0.0
    assert rw.repetition_rate("join join join join") == pytest.approx(0.75)
    assert rw.repetition_rate("") == 0.0
    stats = rw.rewrite_stats(["a b", "c d e f", ""])
    assert stats["words (mean)"] == 2.0 and stats["words (max)"] == 4 and stats["empty (share)"] == pytest.approx(0.3333)


def test_reciprocal_rank_and_reward():
    run = {"a": 3.0, "b": 2.0, "c": 1.0}
    assert rw.reciprocal_rank(run, {"b"}) == 0.5
    assert rw.reciprocal_rank(run, {"c": 1, "a": 0}) == pytest.approx(1 / 3)   # grade 0 is not relevant
    assert rw.reciprocal_rank(run, {"c"}, k=2) == 0.0
    assert rw.reciprocal_rank({}, {"c"}) == 0.0
    assert rw.reward(0.5, "join two paths") == 0.5
    long = " ".join(f"w{i}" for i in range(40))
    assert rw.reward(1.0, long, free_words=30, length_penalty=0.01) == pytest.approx(0.9)
    assert rw.reward(1.0, "x x x x", repetition_penalty=0.5) == pytest.approx(1 - 0.5 * 0.75)
    assert rw.reward(1.0, "  ") == -1.0


def test_preference_pairs_best_over_worst_and_ties_skipped():
    scored = {"q1": [("a", 0.2), ("b", 1.0), ("c", 0.0), ("b", 1.0)],
              "q2": [("x", 0.0), ("y", 0.0)],                     # tie: no pair
              "q3": [("same", 1.0), ("same", 0.0)],                # one distinct rewrite: no pair
              "q4": [("m", 0.50), ("n", 0.45)]}
    pairs = rw.preference_pairs(scored)
    assert [(p["qid"], p["chosen"], p["rejected"]) for p in pairs] == [("q1", "b", "c"), ("q4", "m", "n")]
    assert pairs[0]["chosen_reward"] == 1.0 and pairs[0]["rejected_reward"] == 0.0
    assert [p["qid"] for p in rw.preference_pairs(scored, min_margin=0.1)] == ["q1"]


def test_sft_target_and_prompt():
    doc = {"title": "abc.ABCMeta.register(cls, subclass)", "text": "Register a virtual subclass."}
    assert rw.target_name(doc) == "abc.ABCMeta.register"
    assert rw.sft_target("how do I register a  virtual subclass", doc) == \
        "how do I register a virtual subclass abc.ABCMeta.register"
    assert rw.sft_target("register with abc ABCMeta", doc) == "register with abc ABCMeta"  # name already there
    assert rw.sft_target("what is it", {"title": "", "text": "x"}) == "what is it"
    msgs = rw.rewrite_messages("floor x", few_shot=[("cwd", "how do I get the current directory? os.getcwd")])
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert msgs[-1]["content"] == "floor x"
    assert rw.concat("floor", "round down math.floor") == "floor round down math.floor"
