"""searchtune_utils.lessons: each training step defined once, in the notebook that teaches it (#@save)."""
import ast
import json
import re
from pathlib import Path

import pytest

from searchtune_utils import lessons

ROOT = Path(__file__).resolve().parent.parent
STEPS = {"embedder_loss": "01_finetune_embeddings", "embedder_trainer": "01_finetune_embeddings",
         "lora_config": "03_finetune_generator_sft", "sft_config": "03_finetune_generator_sft",
         "save_and_merge": "03_finetune_generator_sft", "run_args": "03_finetune_generator_sft",
         "dpo_config": "04_preference_tune_dpo"}


def test_every_training_step_is_saved_by_the_notebook_that_teaches_it():
    for name, notebook in STEPS.items():
        assert lessons.where(name).startswith(f"notebooks/{notebook}.ipynb, cell "), name
        assert callable(getattr(lessons, name))
        assert getattr(lessons, name).__module__ == "searchtune_utils.lessons"


def test_the_saved_code_is_the_notebooks_cell_to_the_letter():
    import inspect

    for name in STEPS:
        notebook, number = re.match(r"notebooks/(.+)\.ipynb, cell (\d+)", lessons.where(name)).groups()
        cell = json.loads((ROOT / "notebooks" / f"{notebook}.ipynb").read_text(encoding="utf-8"))["cells"][int(number) - 1]
        assert inspect.getsource(getattr(lessons, name)) in "".join(cell["source"])


def _defined_names(source: str) -> set[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    return {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}


def test_no_saved_step_is_defined_a_second_time_anywhere():
    saved = set(lessons._names())
    for path in sorted((ROOT / "searchtune_utils").glob("*.py")):
        again = saved & _defined_names(path.read_text(encoding="utf-8"))
        assert not again, f"{path.name} defines {again} again: import it from searchtune_utils.lessons"
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        for i, cell in enumerate(json.loads(path.read_text(encoding="utf-8"))["cells"], 1):
            source = "".join(cell["source"])
            if cell["cell_type"] != "code" or lessons.MARKER.match(source.lstrip()):
                continue
            source = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
            again = saved & _defined_names(source)
            assert not again, f"{path.name}, cell {i} defines {again} again: import it from searchtune_utils.lessons"


def test_a_saved_cell_may_only_define(tmp_path):
    assert lessons.check_definitions("import os\nX = 3\ndef f():\n    return X\n", "nb, cell 1") == ["X", "f"]
    with pytest.raises(ValueError, match=r"nb, cell 4, line 2: a #@save cell may only import and define"):
        lessons.check_definitions("import os\nprint(os.getcwd())\n", "nb, cell 4")
    with pytest.raises(ValueError, match=r"nb, cell 4, line 1: .*move this statement"):
        lessons.check_definitions("model = load()\n", "nb, cell 4")
    with pytest.raises(ValueError, match=r"nb, cell 2, line 1:"):
        lessons.check_definitions("def f(:\n", "nb, cell 2")


def test_saved_cells_are_found_by_their_first_line_and_errors_name_the_file(tmp_path):
    nb = {"cells": [{"cell_type": "markdown", "source": ["#@save is only code"]},
                    {"cell_type": "code", "source": ["#@save: used later\n", "def f():\n", "    return 1\n"]},
                    {"cell_type": "code", "source": ["x = 1  #@save not first\n"]}]}
    path = tmp_path / "99_test.ipynb"
    path.write_text(json.dumps(nb), encoding="utf-8")
    assert lessons.saved_cells(path) == [(2, "#@save: used later\ndef f():\n    return 1\n")]
    with pytest.raises(FileNotFoundError, match=r"98_missing.ipynb: notebook not found"):
        lessons.saved_cells(tmp_path / "98_missing.ipynb")
    with pytest.raises(FileNotFoundError, match=r"^notebooks/97_missing.ipynb: notebook not found"):
        lessons.saved_cells("97_missing")


def test_an_unknown_name_lists_what_is_saved():
    with pytest.raises(AttributeError, match=r"no 'train_everything'.*saved: .*sft_config"):
        lessons.train_everything  # noqa: B018
    with pytest.raises(ImportError):
        from searchtune_utils.lessons import train_everything  # noqa: F401
