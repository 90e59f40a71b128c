"""Every notebook with a DATASET switch (00-02, 05-08) runs on a BEIR folder that has only the required fields.

`tests/fixtures/foreign_beir` has no titles, no metadata, integer-like ids, CRLF line ends and a
UTF-8 byte-order mark (see its README). Each retrieval notebook is executed on it with papermill in
the smoke profile, `DATASET` pointing at the folder: a notebook that assumes a field only the
built-in sets have stops here with a KeyError.

The runs go two at a time (each kernel on one thread), in phases, so that a notebook never starts
while one whose saved model it may read is still writing it: 02, 05 and 08 read 01's model, 06
reads 01's, 02's and 05's.
"""
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "foreign_beir"
PHASES = [["01_finetune_embeddings", "00_explore_data_and_baselines"],
          ["02_finetune_reranker", "05_rewrite_queries", "07_drift_and_retraining", "08_vector_database_and_scale"],
          ["06_evaluate_the_stack"]]
RETRIEVAL_NOTEBOOKS = sorted(name for phase in PHASES for name in phase)


def _results_file(name: str) -> Path:
    return ROOT / "results" / f"{name}.foreign_beir.smoke.json"


@pytest.fixture(scope="module")
def foreign_runs(tmp_path_factory):
    """Execute every retrieval notebook on the fixture; ``{name: (output notebook, exception or None)}``."""
    import papermill

    out_dir = tmp_path_factory.mktemp("foreign_runs")

    def run(name):
        _results_file(name).unlink(missing_ok=True)  # the file checked below must come from this run
        out = out_dir / f"{name}.ipynb"
        try:
            papermill.execute_notebook(
                str(ROOT / "notebooks" / f"{name}.ipynb"), str(out), kernel_name="python3",
                parameters={"PROFILE": "smoke", "DATASET": os.path.relpath(FIXTURE, ROOT / "notebooks")},
                cwd=str(ROOT / "notebooks"), progress_bar=False, log_output=False)
            return out, None
        except Exception as exc:  # reported by the notebook's own test below
            return out, exc

    runs = {}
    with pytest.MonkeyPatch.context() as mp, ThreadPoolExecutor(max_workers=2) as pool:
        mp.setenv("SEARCHTUNE_BATCH", "1")
        mp.setenv("OMP_NUM_THREADS", "1")  # two kernels on two cores
        for phase in PHASES:
            runs.update(zip(phase, pool.map(run, phase)))
    return runs


@pytest.mark.parametrize("name", RETRIEVAL_NOTEBOOKS)
def test_notebook_runs_on_a_foreign_beir_folder(name, foreign_runs):
    out, error = foreign_runs[name]
    if error is not None:
        raise error
    text = out.read_text(encoding="utf-8")
    assert "foreign_beir" in text and "Traceback" not in text
    assert _results_file(name).exists(), f"{name} wrote no results file for the foreign dataset"
