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
    assert rw.reward(1.0, "join paths", min_words=5) == -1.0  # the length floor
    assert rw.reward(1.0, "join two paths into one", min_words=5) == 1.0


def test_preference_pairs_best_over_worst_and_ties_skipped():
    scored = {"q1": [("a", 0.2), ("b", 1.0), ("c", 0.0), ("b", 1.0)],
              "q2": [("x", 0.0), ("y", 0.0)],                     # tie: no pair
              "q3": [("same", 1.0), ("same", 0.0)],                # one distinct rewrite: no pair
              "q4": [("m", 0.50), ("n", 0.45)]}
    pairs = rw.preference_pairs(scored)
    assert [(p["qid"], p["chosen"], p["rejected"]) for p in pairs] == [("q1", "b", "c"), ("q4", "m", "n")]
    assert pairs[0]["chosen_reward"] == 1.0 and pairs[0]["rejected_reward"] == 0.0
    assert [p["qid"] for p in rw.preference_pairs(scored, min_margin=0.1)] == ["q1"]


def test_prompt_and_choose_r():
    msgs = rw.rewrite_messages("floor x", few_shot=[("cwd", "Return the current working directory.")])
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert msgs[-1]["content"] == "floor x" and msgs[0]["content"] == rw.SYSTEM_PROMPT
    assert rw.weighted("floor", "round down", 1) == "floor round down"
    raw, exp = {"a": "x", "b": "y"}, {"a": "e", "b": ""}
    seen = []

    def evaluate(texts):                     # a score that likes two copies of the raw query best
        seen.append(texts)
        return -abs(texts["a"].split().count("x") - 2)
    best, scores = rw.choose_r(raw, exp, evaluate, grid=(1, 2, 3))
    assert best == 2 and scores == {1: -1.0, 2: 0.0, 3: -1.0}
    assert seen[0] == {"a": "x e", "b": "y"}
    assert rw.choose_r(raw, exp, lambda t: 1.0, grid=(1, 2, 3))[0] == 1   # ties: the first in the grid
    # the raw query alone is a candidate too: dev picks it when every expansion hurts
    best, scores = rw.choose_r(raw, exp, lambda t: -len(t["a"].split()), grid=(1, 2, rw.RAW_ONLY))
    assert best == rw.RAW_ONLY and scores[rw.RAW_ONLY] == -1.0


def test_first_words_query_is_the_novice_rule():
    q = "How do I register a virtual subclass of an ABC?"
    assert rw.first_words_query(q, 3) == "register virtual subclass"
    # the rarest rule may pick other words; the first-words rule never looks at the corpus
    assert rw.make_query("which function returns the current working directory?", IDF, 2, rule="first") == "returns current"
    assert rw.make_query(q, IDF, 3, rule="rarest") == rw.raw_query(q, IDF, 3)
    assert rw.first_words_query("What is this?") == "what"
    with pytest.raises(ValueError, match="unknown query rule"):
        rw.make_query(q, IDF, 3, rule="longest")


def test_raw_queries_with_the_first_words_rule():
    queries = {"a": "how do I join path components", "b": "how do I join path components please", "c": "floor of x"}
    raw, dropped = rw.raw_queries(queries, {"test": {"a": {}}, "train": {"b": {}, "c": {}}}, IDF, 3, rule="first")
    assert raw["test"] == {"a": "join path components"}
    assert raw["train"]["b"] == "join path components please"   # collided with test: one word longer
    assert raw["train"]["c"] == "floor"
    rw.check_raw_leakage(raw)


def test_weighted_repeats_the_raw_query():
    assert rw.weighted("os cwd", "Return the current directory.", 2) == "os cwd os cwd Return the current directory."
    assert rw.weighted("os cwd", "", 1) == "os cwd"
    assert rw.weighted("os cwd", "Return the current directory.", rw.RAW_ONLY) == "os cwd"
    with pytest.raises(ValueError, match="r must be >= 1"):
        rw.weighted("os cwd", "x", 0)


def test_translation_table_learns_document_words_from_pairs():
    pairs = [("folder now", "Return the current working directory."),
             ("folder path", "Return the current working directory as a path."),
             ("floor number", "Return the floor of x as an Integral."),
             ("folder once", "Join two pathname components.")]
    table = rw.translation_table(pairs, IDF, min_count=2)
    # "folder" met "current", "working", "directory", "return" twice; the rarest of them wins
    assert table["folder"] in {"current", "working", "directory"}
    assert "floor" not in table                                     # seen once: below min_count
    assert "now" not in table
    assert rw.translate("folder path", table) == table["folder"]
    assert rw.translate("folder " + table["folder"], table) == ""   # already in the query
    assert rw.translate("unknown words", table) == ""


def test_summary_sentence_is_the_first_sentence():
    doc = {"title": "os.getcwd()", "text": "Return a string representing the cwd. On Windows, bytes differ."}
    assert rw.summary_sentence(doc) == "Return a string representing the cwd."
    assert rw.summary_sentence({"title": "T", "text": "e.g. this stays one sentence because e.g. is lower case"}) \
        == "e.g. this stays one sentence because e.g. is lower case"
    assert rw.summary_sentence({"title": "Only a title", "text": ""}) == "Only a title"
    assert rw.summary_sentence({"text": " ".join(["word"] * 50)}, max_words=5) == "word word word word word"
