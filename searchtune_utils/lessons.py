"""The training steps the notebooks teach, defined once: on screen in the notebook that teaches them.

d2l's ``#@save`` pattern. A code cell whose first line starts with ``#@save`` holds definitions
only (imports, functions, constants). In its notebook it runs like any other cell; this module reads
the same cell from the notebook file and defines its names here, so later notebooks and the package
call the very code the lesson shows:

    from searchtune_utils.lessons import embedder_trainer    # defined in notebook 01

There is no second copy to drift apart: edit the notebook's cell and every caller follows.
:data:`SAVED_FROM` lists the notebooks that save definitions, in order; a name saved twice is an
error (one definition of each step), and so is a ``#@save`` cell that does anything but define.
"""
from __future__ import annotations

import ast
import json
import linecache
import re
from pathlib import Path

from .config import ROOT

NOTEBOOKS_DIR = ROOT / "notebooks"
# The notebooks that teach a training step, in the order of the series.
SAVED_FROM = ("01_finetune_embeddings", "03_finetune_generator_sft", "04_preference_tune_dpo")
MARKER = re.compile(r"#\s*@save\b")
_ALLOWED = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef)

_index: dict[str, tuple[str, str]] | None = None  # name -> (notebook, "notebooks/....ipynb, cell N")
_loaded: dict[str, dict] = {}  # notebook -> the namespace its #@save cells ran in (each notebook runs once, when first needed)


def notebook_cells(notebook: str | Path) -> tuple[Path, list[dict]]:
    """``(path, cells)`` of ``notebook`` (a name under ``notebooks/`` or a path to an .ipynb file)."""
    path = Path(notebook)
    if path.suffix != ".ipynb":
        path = NOTEBOOKS_DIR / f"{notebook}.ipynb"
    if not path.is_file():
        shown = f"notebooks/{path.name}" if path.parent == NOTEBOOKS_DIR else str(path)
        raise FileNotFoundError(f"{shown}: notebook not found; the package reads parameters and "
                                "#@save cells from the notebooks: run from a clone of the searchtune repository")
    return path, json.loads(path.read_text(encoding="utf-8"))["cells"]


def saved_cells(notebook: str | Path) -> list[tuple[int, str]]:
    """``(cell number, source)`` of each ``#@save`` code cell of ``notebook``; cell numbers count
    every cell from 1, as Jupyter shows them."""
    return [(i, "".join(c["source"])) for i, c in enumerate(notebook_cells(notebook)[1], 1)
            if c.get("cell_type") == "code" and MARKER.match("".join(c["source"]).lstrip())]


def check_definitions(source: str, where: str) -> list[str]:
    """The names a ``#@save`` cell defines; ValueError naming the cell and line of any statement that
    is not an import, a function, a class or a constant (a saved cell must not compute anything)."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ValueError(f"{where}, line {exc.lineno}: {exc.msg}; fix the cell and save the notebook") from exc
    names = []
    for node in tree.body:
        if isinstance(node, _ALLOWED):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.append(node.name)
            continue
        if isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
            try:
                ast.literal_eval(node.value)
            except ValueError:
                pass
            else:
                names += [t.id for t in node.targets]
                continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # a docstring or comment string
        raise ValueError(f"{where}, line {node.lineno}: a #@save cell may only import and define functions, classes "
                         "and constants; move this statement to the next cell")
    return names


def _names() -> dict[str, tuple[str, str]]:
    """Every saved name with its notebook and cell, read (not run) from the notebooks."""
    global _index
    if _index is None:
        index: dict[str, tuple[str, str]] = {}
        for notebook in SAVED_FROM:
            for number, source in saved_cells(notebook):
                origin = f"notebooks/{notebook}.ipynb, cell {number}"
                for name in check_definitions(source, origin):
                    if name in index:
                        raise ValueError(f"{origin}: `{name}` is already saved by {index[name][1]}; one definition "
                                         "of each step: import it there instead of defining it again")
                    index[name] = (notebook, origin)
        _index = index
    return _index


def _run(notebook: str) -> dict:
    """Run the #@save cells of ``notebook`` once, in order, in a namespace of their own."""
    if notebook not in _loaded:
        namespace: dict = {"__name__": __name__}
        for number, source in saved_cells(notebook):
            filename = f"<notebooks/{notebook}.ipynb, cell {number}>"
            linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)  # tracebacks, inspect
            exec(compile(source, filename, "exec"), namespace)
        _loaded[notebook] = namespace
    return _loaded[notebook]


def where(name: str) -> str:
    """The notebook and cell that define ``name``."""
    index = _names()
    if name not in index:
        raise AttributeError(f"no #@save cell defines {name!r}; saved: {', '.join(sorted(index))}")
    return index[name][1]


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    index = _names()
    if name not in index:
        raise AttributeError(f"searchtune_utils.lessons has no {name!r}: no #@save cell of "
                             f"{', '.join(SAVED_FROM)} defines it (saved: {', '.join(sorted(index))})")
    return _run(index[name][0])[name]


def __dir__():
    return sorted(set(globals()) | set(_names()))
