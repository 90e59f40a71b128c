"""Every notebook with a DATASET switch (00-02, 05-08) runs on a BEIR folder that has only the required fields.

`tests/fixtures/foreign_beir` has no titles, no metadata, integer-like ids, CRLF line ends and a
UTF-8 byte-order mark (see its README). Each retrieval notebook is executed on it with papermill in
the smoke profile, `DATASET` pointing at the folder: a notebook that assumes a field only the
built-in sets have stops here with a KeyError.
"""
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "foreign_beir"
RETRIEVAL_NOTEBOOKS = ["00_explore_data_and_baselines", "01_finetune_embeddings", "02_finetune_reranker",
                       "05_rewrite_queries", "06_evaluate_the_stack", "07_drift_and_retraining",
                       "08_vector_database_and_scale"]


@pytest.mark.parametrize("name", RETRIEVAL_NOTEBOOKS)
def test_notebook_runs_on_a_foreign_beir_folder(name, tmp_path, monkeypatch):
    import papermill

    monkeypatch.setenv("SEARCHTUNE_BATCH", "1")
    out = tmp_path / f"{name}.ipynb"
    papermill.execute_notebook(
        str(ROOT / "notebooks" / f"{name}.ipynb"), str(out), kernel_name="python3",
        parameters={"PROFILE": "smoke", "DATASET": os.path.relpath(FIXTURE, ROOT / "notebooks")},
        cwd=str(ROOT / "notebooks"), progress_bar=False, log_output=False)
    text = out.read_text(encoding="utf-8")
    assert "foreign_beir" in text and "Traceback" not in text
    results = ROOT / "results" / f"{name}.foreign_beir.smoke.json"
    assert results.exists(), f"{name} wrote no results file for the foreign dataset"
