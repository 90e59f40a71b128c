"""The time a notebook's header states is the time it was measured to take.

Each notebook's first markdown cell has a header table whose `**Time**` row states the time in one
form, read by this test and by people alike:

    | **Time** | about N minutes on a 2-core laptop CPU in the `cpu` profile<anything>; on a GPU: not measured yet |

N is a whole number of minutes ("about 1 minute" for one). It must lie within ±30% of the wall time
of the committed `cpu`-profile run on the default dataset: ``timings["notebook total (s)"]`` (or
``timings["notebook (s)"]``) in ``results/<notebook>.json`` — the number the README's notebook
table shows. A GPU time is stated only where a `gpu`-profile run was measured
(``results/<notebook>.gpu.json``), as "about N minutes on a GPU in the `gpu` profile", checked the
same way; otherwise the row says "on a GPU: not measured yet" or nothing about a GPU.
``notebooks/index.toml`` states no times: the README's table reads them from the results files.

Right after the CPU time the row names the precision of that run, as its results file records it:
``(bf16)`` or ``(fp32)``. A bf16 run also states the fp32 time of the same notebook, "; about M
minutes in fp32", checked the same way against the fp32 run recorded in ``results/precision.json``
(the fp32-vs-bf16 comparison of each stage on dev, and why each notebook runs in the precision it does).

The README states the smoke rehearsal's time in the form ``about N minutes on a 2-core laptop CPU
for the nine notebooks``; it is checked, with the same tolerance, against the rehearsal recorded in
``results/smoke_rehearsal.json`` (the sum of the nine notebooks' smoke run times), so that no test
depends on how fast the machine running it is.
"""
import json
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
RESULTS = ROOT / "results"
TOLERANCE = 0.30
CPU_FORM = "about {n} {unit} on a 2-core laptop CPU in the `cpu` profile"
GPU_FORM = "about {n} {unit} on a GPU in the `gpu` profile"
GPU_NOT_MEASURED = "on a GPU: not measured yet"
CPU_TIME = re.compile(r"\babout (\d+) (minutes?) on a 2-core laptop CPU in the `cpu` profile")
SMOKE_FORM = "about {n} {unit} on a 2-core laptop CPU for the nine notebooks"
SMOKE_TIME = re.compile(r"\babout (\d+) (minutes?) on a 2-core laptop CPU for the nine notebooks")
PRECISION_ROW = re.compile(r"in the `cpu` profile \((bf16|fp32)\)")
FP32_FORM = "about {n} {unit} in fp32"
FP32_TIME = re.compile(r"\babout (\d+) (minutes?) in fp32\b")
GPU_TIME = re.compile(r"\babout (\d+) (minutes?) on a GPU in the `gpu` profile")


def time_row(nb: dict) -> str:
    """The `**Time**` row of the header table in the notebook's first markdown cell."""
    first = next(c for c in nb["cells"] if c["cell_type"] == "markdown")
    rows = [line for line in "".join(first["source"]).splitlines() if re.match(r"\|\s*\*\*Time\*\*\s*\|", line)]
    assert len(rows) == 1, f"the first markdown cell has {len(rows)} `| **Time** |` rows, not one"
    return rows[0]


def measured_seconds(results_file: Path):
    """The notebook's measured wall time in seconds, or None."""
    if not results_file.exists():
        return None
    timings = json.loads(results_file.read_text(encoding="utf-8")).get("timings", {})
    return timings.get("notebook total (s)", timings.get("notebook (s)"))


def _form(form: str, minutes: float) -> str:
    n = max(1, round(minutes))
    return form.format(n=n, unit="minute" if n == 1 else "minutes")


def check_time(name: str, row: str, pattern: re.Pattern, form: str, seconds, source: str) -> str | None:
    """None when ``row`` states a time in ``form`` within ±30% of ``seconds``; else what is wrong and the fix."""
    if seconds is None:
        return f"{name}: no measured time in {source} (timings['notebook total (s)']): run the notebook to measure it"
    minutes = seconds / 60
    fix = f"write {_form(form, minutes)!r} in the header's **Time** row (first markdown cell)"
    found = pattern.search(row)
    if not found:
        return (f"{name}: the header's time is not in the form {form.format(n='N', unit='minutes')!r} "
                f"(measured: {minutes:.1f} min in {source}); {fix}. The row: {row}")
    stated, unit = int(found.group(1)), found.group(2)
    if unit != ("minute" if stated == 1 else "minutes"):
        return f"{name}: 'about {stated} {unit}': {fix}"
    if abs(stated - minutes) > TOLERANCE * minutes:
        return (f"{name}: the header says about {stated} minutes, the measured run took {minutes:.1f} min "
                f"({seconds:g} s in {source}), more than ±{TOLERANCE:.0%} apart; {fix}")
    return None


def check_gpu_claim(name: str, row: str) -> str | None:
    """Without a measured gpu run, the row may only say the GPU time is not measured yet."""
    rest = row.replace(GPU_NOT_MEASURED, "")
    if re.search(r"\bGPU", rest):
        return (f"{name}: the header states something about a GPU but no gpu-profile run was measured "
                f"(no results/{name}.gpu.json); write {GPU_NOT_MEASURED!r} instead. The row: {row}")
    return None


def test_the_checker_reads_the_form_and_the_tolerance():
    row = "| **Time** | about 16 minutes on a 2-core laptop CPU in the `cpu` profile (printed at the end); on a GPU: not measured yet |"
    assert check_time("01_x", row, CPU_TIME, CPU_FORM, 953.1, "r.json") is None   # 16 vs 15.9 min
    assert "about 10 minutes" in check_time("01_x", row.replace("16", "10"), CPU_TIME, CPU_FORM, 953.1, "r.json")
    assert "'about 16 minutes on a 2-core" in check_time("01_x", row.replace("about 16", "about ten"), CPU_TIME,
                                                         CPU_FORM, 953.1, "r.json")
    assert check_time("00_x", row.replace("16 minutes", "1 minute"), CPU_TIME, CPU_FORM, 73.3, "r.json") is None
    assert check_time("00_x", row.replace("16 minutes", "1 minutes"), CPU_TIME, CPU_FORM, 73.3, "r.json")
    assert "no measured time" in check_time("09_x", row, CPU_TIME, CPU_FORM, None, "r.json")
    assert check_gpu_claim("01_x", row) is None
    assert check_gpu_claim("01_x", row.replace(GPU_NOT_MEASURED, "a few minutes on a GPU"))
    assert check_gpu_claim("08_x", row.replace("; " + GPU_NOT_MEASURED, "")) is None


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_header_time_agrees_with_the_measured_time(path):
    row = time_row(json.loads(path.read_text(encoding="utf-8")))
    cpu = RESULTS / f"{path.stem}.json"
    problem = check_time(path.stem, row, CPU_TIME, CPU_FORM, measured_seconds(cpu), f"results/{cpu.name}")
    assert problem is None, problem
    gpu = RESULTS / f"{path.stem}.gpu.json"
    if gpu.exists():
        problem = check_time(path.stem, row, GPU_TIME, GPU_FORM, measured_seconds(gpu), f"results/{gpu.name}")
    else:
        problem = check_gpu_claim(path.stem, row)
    assert problem is None, problem


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_header_names_the_precision_of_the_measured_run(path):
    row = time_row(json.loads(path.read_text(encoding="utf-8")))
    results = json.loads((RESULTS / f"{path.stem}.json").read_text(encoding="utf-8"))
    assert results.get("precision") in ("bf16", "fp32"), f"results/{path.stem}.json records no precision: rerun the notebook"
    stated = PRECISION_ROW.search(row)
    assert stated, (f"{path.stem}: the header's time does not name its precision; write \"in the `cpu` profile "
                    f"({results['precision']})\". The row: {row}")
    assert stated.group(1) == results["precision"], (f"{path.stem}: the header says {stated.group(1)}, "
                                                      f"results/{path.stem}.json says {results['precision']}")
    if results["precision"] == "bf16":
        record = json.loads((RESULTS / "precision.json").read_text(encoding="utf-8"))["notebooks"].get(path.stem, {})
        seconds = record.get("fp32", {}).get("notebook total (s)")
        problem = check_time(path.stem, row, FP32_TIME, FP32_FORM, seconds, "results/precision.json (fp32)")
        assert problem is None, problem


def test_index_toml_states_no_time():
    """The README's notebook table takes its times from the results files; index.toml must not state its own."""
    for entry in tomllib.loads((ROOT / "notebooks" / "index.toml").read_text(encoding="utf-8"))["notebook"]:
        for key, value in entry.items():
            assert not re.search(r"time|minute|hour|duration", key, re.I), f"index.toml, {entry['file']}: key {key!r}"
            assert not (isinstance(value, str) and re.search(r"\b\d+\s*(min|minutes?|hours?|h|s)\b|\bminutes?\b|\bhours?\b",
                                                             value, re.I)), \
                f"index.toml, {entry['file']}: {key} states a time ({value!r}); the README table reads results/*.json"



def test_readme_smoke_rehearsal_time_agrees_with_the_recorded_rehearsal():
    """The README's rehearsal time against results/smoke_rehearsal.json (committed, written by
    `python -m searchtune_utils.report --record-smoke` after a rehearsal on a fresh clone)."""
    record = RESULTS / "smoke_rehearsal.json"
    assert record.exists(), "results/smoke_rehearsal.json is missing: run `make run PROFILE=smoke`, then the command above"
    recorded = json.loads(record.read_text(encoding="utf-8"))
    assert set(recorded["notebooks (s)"]) == {p.stem for p in NOTEBOOKS}, "the record does not cover every notebook: record again"
    text = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    problem = check_time("README (make run PROFILE=smoke)", text, SMOKE_TIME, SMOKE_FORM,
                         recorded["notebook total (s)"], "results/smoke_rehearsal.json")
    assert problem is None, problem


WORKSHOP_FORM = "about {n} {unit} in the `workshop` profile"
WORKSHOP_TIME = re.compile(r"\babout (\d+) (minutes?) in the `workshop` profile")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_header_workshop_time_agrees_with_the_recorded_rehearsal(path):
    """The header's workshop time against results/workshop_rehearsal.json (wall time with the kernel's start);
    where the rehearsal's main effect has its interval touching 0, the row says the effect does not show."""
    record = json.loads((RESULTS / "workshop_rehearsal.json").read_text(encoding="utf-8"))["notebooks"][path.stem]
    row = time_row(json.loads(path.read_text(encoding="utf-8")))
    seconds = record["wall with kernel start (s)"] or record["notebook (s)"]
    problem = check_time(path.stem, row, WORKSHOP_TIME, WORKSHOP_FORM, seconds, "results/workshop_rehearsal.json")
    assert problem is None, problem
    effect = record["main effect"]
    if effect and effect["required"] and not effect["ci above 0"]:
        assert "main effect does not show" in row, f"{path.stem}: say in the Time row that the main effect does not show at workshop size"
