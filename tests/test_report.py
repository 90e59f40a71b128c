"""The README tables are generated from results files, never typed."""
import json

import pytest

from searchtune_utils import report


def test_results_table_renders_every_system_scaled_by_100(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "RESULTS_DIR", tmp_path)
    (tmp_path / "01_x.json").write_text(json.dumps({
        "notebook": "01_x", "date": "2026-01-01", "machine": {"device": "cpu"},
        "metrics": {"base": {"nDCG@10": 0.5}, "tuned": {"nDCG@10": 0.6543}, "other": {"nDCG@10": 0.1}},
        "readme_systems": ["base", "tuned"]}))
    (tmp_path / "01_x.smoke.json").write_text("{not read: smoke results never reach the README}")
    table = report.results_table()
    assert "| 01_x | pydocs | base | 50.0 |" in table and "| 01_x | pydocs | tuned | 65.4 |" in table
    assert "other" not in table


def test_faqs_results_are_listed_after_pydocs_with_their_dataset(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "RESULTS_DIR", tmp_path)
    for stem, dataset, score in (("01_x.faqs", "faqs", 0.7), ("01_x", "pydocs", 0.9)):
        (tmp_path / f"{stem}.json").write_text(json.dumps({
            "notebook": "01_x", "dataset": dataset, "date": "2026-01-01", "machine": {"device": "cpu"},
            "metrics": {"tuned": {"nDCG@10": score}}}))
    (tmp_path / "01_x.faqs.smoke.json").write_text("{never read}")
    (tmp_path / "01_x.myfolder.json").write_text("{a learner's own data: not in the README}")
    table = report.results_table()
    assert table.index("| 01_x | pydocs | tuned | 90.0 |") < table.index("| 01_x | faqs | tuned | 70.0 |")


def test_results_of_different_kinds_get_separate_tables(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "RESULTS_DIR", tmp_path)
    for nb, metric in (("01_a", "nDCG@10"), ("02_b", "nDCG@10"), ("03_c", "task success")):
        (tmp_path / f"{nb}.json").write_text(json.dumps({
            "notebook": nb, "date": "2026-01-01", "machine": {"device": "cpu"}, "metrics": {"s": {metric: 0.25}}}))
    tables = report.results_table().split("\n\n")
    assert "| notebook | data | system | nDCG@10 | measured on |" in tables[0] and "| 02_b | pydocs | s | 25.0 |" in tables[0]
    assert "| notebook | data | system | task success | measured on |" in tables[1] and "| 03_c | pydocs | s | 25.0 |" in tables[1]
    assert "task success" not in tables[0]


def test_update_readme_replaces_only_the_marked_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "RESULTS_DIR", tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{report.NB_START}\nold\n{report.NB_END}\nmiddle\n{report.START}\nold\n{report.END}\nend\n")
    report.update_readme(readme)
    text = readme.read_text()
    assert text.startswith("intro\n") and "\nmiddle\n" in text and text.endswith("end\n")
    assert "\nold\n" not in text and "_No results yet" in text and "| 00 |" in text


def test_transfer_table_from_notebook_01_results(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "RESULTS_DIR", tmp_path)
    assert report.transfer_table("01_x") == ""
    base = {"delta": 0.0, "ci_low": 0.0, "ci_high": 0.0, "p_value": 1.0}
    worse = {"delta": -0.077, "ci_low": -0.1, "ci_high": -0.054, "p_value": 0.0002}
    (tmp_path / "01_x.json").write_text(json.dumps({"transfer": {"faqs test": {
        "base": {"nDCG@10": 0.7882, "vs base": base}, "tuned on pydocs": {"nDCG@10": 0.7117, "vs base": worse}}}}))
    table = report.transfer_table("01_x")
    assert "| faqs test | base | 78.8 |  |  |  |" in table
    assert "| faqs test | tuned on pydocs | 71.2 | -7.7 | [-10.0, -5.4] | 0.0002 |" in table


def test_generation_table_shows_intervals_and_paired_tests_and_keeps_them_out_of_the_plain_table(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "RESULTS_DIR", tmp_path)
    assert report.generation_table(("03_g",)) == ""
    (tmp_path / "03_g.json").write_text(json.dumps({
        "notebook": "03_g", "date": "2026-01-01", "machine": {"device": "cpu"},
        "metrics": {"rule": {"task success": 0.8833, "faithfulness": float("nan")}, "SFT": {"task success": 0.5}},
        "metrics_ci": {"rule": {"task success": [0.8421, 0.9149]}, "SFT": {"task success": [0.4438, 0.5562]}},
        "paired_tests": {"SFT vs rule": {"task success": {"delta": -0.3833, "ci_low": -0.4467, "ci_high": -0.32,
                                                          "p_value": 0.0002}}}}))
    table = report.generation_table(("03_g",))
    assert "| 03_g | rule | 88.3 [84, 91] |" in table and "| 03_g | SFT | 50.0 [44, 56] |" in table
    assert "| 03_g | SFT vs rule | -38.3 | [-44.7, -32.0] | 0.0002 |" in table
    assert "03_g" not in report.results_table()


def test_counts_are_not_scaled_like_rates(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "RESULTS_DIR", tmp_path)
    (tmp_path / "07_d.json").write_text(json.dumps({
        "notebook": "07_d", "date": "2026-01-01", "machine": {"device": "cpu"},
        "metrics": {"never": {"year nDCG@10": 0.9312, "retrains": 0}, "monthly": {"year nDCG@10": 0.9378, "retrains": 9}}}))
    table = report.results_table()
    assert "| 07_d | pydocs | never | 93.1 | 0 |" in table and "| 07_d | pydocs | monthly | 93.8 | 9 |" in table


def test_scale_table_has_its_own_rows_and_stays_out_of_the_retrieval_table(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "RESULTS_DIR", tmp_path)
    row = {"recall@10": 0.9931, "p50_ms": 0.81, "p95_ms": 1.234, "ram_bytes_per_vector": 1580, "disk_bytes_per_vector": 0,
           "build_s": 12.5}
    (tmp_path / f"{report.SCALE_NOTEBOOK}.json").write_text(json.dumps({
        "notebook": report.SCALE_NOTEBOOK, "date": "2026-01-01", "machine": {"device": "cpu", "cpus": 2},
        "metrics": {"HNSW @ 110000": {**row, "hnsw_ef": 64}, "exact (NumPy) @ 5030": {**row, "recall@10": 1.0, "hnsw_ef": None}}}))
    table = report.scale_table()
    assert "| 110,000 | HNSW | 64 | 0.9931 | 0.81 | 1.23 | 1,580 | 0 | 12.5 |" in table
    assert table.index("| 5,030 | exact (NumPy) |  | 1.0000 |") < table.index("| 110,000 |")
    assert report.SCALE_NOTEBOOK not in report.results_table()


@pytest.mark.parametrize("notebook", ["02_finetune_reranker", "03_finetune_generator_sft", "04_preference_tune_dpo",
                                      "05_rewrite_queries", "06_evaluate_the_stack"])
def test_lessons_name_their_best_system_without_training_and_the_readme_quotes_it(notebook):
    """The headline compares with the best system that needs no training (chosen on dev): every results
    file of the lesson (the default dataset's and the built-in faqs one's, where it was run) names it,
    and the README's headline table quotes it on that notebook's line for that dataset."""
    readme = (report.ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split(report.HL_START, 1)[1].split(report.HL_END, 1)[0]
    for tag, data in (("", "pydocs"), (".faqs", "faqs")):
        path = report.RESULTS_DIR / f"{notebook}{tag}.json"
        if not path.exists():
            assert tag, f"results/{path.name} is missing: run the notebook"
            continue
        best = json.loads(path.read_text(encoding="utf-8")).get("best_no_training")
        assert best, f"results/{path.name} has no best_no_training entry: rerun the notebook on {data}"
        lines = [line for line in block.splitlines() if line.startswith(f"| {notebook[:2]} | {data} |")]
        assert lines, f"the README's headline table has no {data} line for {notebook}: run `make report`"
        names = best.values() if isinstance(best, dict) else [best]
        assert all(any(name in line for line in lines) for name in names), (notebook, data, names, lines)


@pytest.mark.parametrize("notebook,delta", [("01_finetune_embeddings", 19.3), ("02_finetune_reranker", 8.9),
                                            ("06_evaluate_the_stack", 3.3), ("07_drift_and_retraining", None)])
def test_workshop_effect_reads_each_lessons_main_effect(notebook, delta):
    """The rehearsal's effect reader on the committed cpu results (same structure as a workshop run's)."""
    res = json.loads((report.RESULTS_DIR / f"{notebook}.json").read_text(encoding="utf-8"))
    e = report.workshop_effect(notebook, res)
    assert e["unit"] == "points" and e["ci"][0] <= e["delta"] <= e["ci"][1]
    if delta is not None:
        assert e["delta"] == delta
    assert report.workshop_effect("00_explore_data_and_baselines", {}) is None


def test_workshop_effect_of_notebook_03_is_the_paired_auc_difference():
    res = {"decision_auc_sft_minus_prompt": {"n": 60, "before": 0.5, "after": 0.8, "delta": 0.3, "ci_low": 0.12, "ci_high": 0.46}}
    assert report.workshop_effect("03_finetune_generator_sft", res) == {
        "effect": "SFT decision AUC minus the prompt baseline's, test (paired bootstrap)", "delta": 0.3, "ci": [0.12, 0.46],
        "unit": "AUC"}


def test_readme_workshop_table_is_the_recorded_rehearsal():
    """The README's workshop table against results/workshop_rehearsal.json (written by
    `python -m searchtune_utils.report --record-workshop` after `make run PROFILE=workshop` on a fresh clone)."""
    record = report.WORKSHOP_RECORD
    assert record.exists(), "results/workshop_rehearsal.json is missing: run `make run PROFILE=workshop`, then the command above"
    rec = json.loads(record.read_text(encoding="utf-8"))
    assert set(rec["notebooks"]) == {p.stem for p in (report.ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}, \
        "the record does not cover every notebook: record again"
    readme = (report.ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split(report.WORKSHOP_START, 1)[1].split(report.WORKSHOP_END, 1)[0]
    assert block.strip() == report.workshop_table().strip(), "README's workshop table differs from the record: run `make report`"


def test_record_workshop_from_a_rehearsals_files(tmp_path, monkeypatch):
    """record_workshop on a rehearsal's files (here: the committed cpu results under workshop names), with the
    wall times make run logs and an fp32 re-run of one notebook; workshop_table renders the record."""
    results = tmp_path / "results"
    results.mkdir()
    notebooks = sorted(p.stem for p in (report.ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    for nb in notebooks:
        res = json.loads((report.RESULTS_DIR / f"{nb}.json").read_text(encoding="utf-8"))
        if nb.startswith("03"):
            res["decision_auc_sft_minus_prompt"] = {"n": 300, "before": 0.5, "after": 0.9, "delta": 0.4, "ci_low": 0.3,
                                                    "ci_high": 0.5}
        (results / f"{nb}.workshop.json").write_text(json.dumps(res))
    fp32 = tmp_path / "fp32"
    fp32.mkdir()
    (fp32 / "03_finetune_generator_sft.workshop.json").write_text(json.dumps(
        {"precision": "fp32", "timings": {"notebook total (s)": 2 * json.loads(
            (results / "03_finetune_generator_sft.workshop.json").read_text())["timings"]["notebook total (s)"]}}))
    wall = tmp_path / "wall_seconds.tsv"
    wall.write_text("".join(f"{nb}\t{100 + i}\n" for i, nb in enumerate(notebooks)) + f"{notebooks[0]}\t7\n")
    monkeypatch.setattr(report, "RESULTS_DIR", results)
    rec = report.record_workshop(tmp_path / "record.json", wall, fp32)
    assert set(rec["notebooks"]) == set(notebooks)
    assert rec["notebooks"][notebooks[0]]["wall with kernel start (s)"] == 7  # the last run counts
    assert rec["notebooks"]["01_finetune_embeddings"]["main effect"]["ci above 0"] is True
    assert rec["required effects with the CI above 0"]["06"] is False  # the cpu run's +3.3 [-4.2, +10.8]
    assert rec["notebooks"]["03_finetune_generator_sft"]["fp32 / this run"] == 2.0
    assert "fp32 / this run" not in rec["notebooks"]["05_rewrite_queries"]
    table = report.workshop_table(tmp_path / "record.json")
    assert "| 03 |" in table and "(2.00×)" in table and "+0.400 [+0.300, +0.500] AUC | yes |" in table
    assert "| 06 |" in table and "| no |" in table and "| all |" in table
