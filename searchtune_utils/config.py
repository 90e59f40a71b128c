"""Profiles, paths and results files shared by every notebook.

One switch selects the profile: the ``SEARCHTUNE_PROFILE`` environment variable (``smoke``,
``workshop`` (about ten minutes a notebook, for a class), ``cpu`` — the default — or ``gpu``), which each notebook's papermill ``parameters`` cell reads.
The sizes themselves live in each notebook's parameters cell, not here.
"""
from __future__ import annotations

import json
import os
import platform
import re
import tempfile
import time
from pathlib import Path

PROFILES = ("smoke", "workshop", "cpu", "gpu")
PRECISIONS = ("auto", "fp32", "bf16")
DEFAULT_PROFILE = "cpu"
DEFAULT_DATASET = "pydocs"
BUILT_IN_DATASETS = ("pydocs", "faqs")

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "data"
ARTIFACTS_DIR = ROOT / "artifacts"
RESULTS_DIR = ROOT / "results"


def get_profile(value: str | None = None) -> str:
    """Return the active profile: ``value`` if given, else ``$SEARCHTUNE_PROFILE``, else ``cpu``.

    Raises ValueError naming the allowed values when the profile is unknown.
    """
    profile = (value or os.environ.get("SEARCHTUNE_PROFILE") or DEFAULT_PROFILE).strip().lower()
    if profile not in PROFILES:
        raise ValueError(
            f"Unknown profile {profile!r} (from SEARCHTUNE_PROFILE or the parameters cell). "
            f"Use one of {', '.join(PROFILES)}, e.g. `SEARCHTUNE_PROFILE=smoke make run`."
        )
    return profile


def native_bf16() -> tuple[bool, str]:
    """Whether this machine has native bf16 matrix units, and how we know.

    - CUDA: ``torch.cuda.is_bf16_supported()`` (Ampere and newer).
    - x86 CPUs: AMX (``torch.cpu._is_amx_tile_supported()``, Intel Sapphire Rapids and newer) or
      AVX512-BF16 (``torch.cpu._is_avx512_bf16_supported()``, Intel Cooper Lake, AMD Zen 4 and newer):
      the same answer as the ``amx_bf16`` / ``avx512_bf16`` flags that ``lscpu`` prints.
    - Anything else (older x86 laptops, Apple and other ARM CPUs): no. bf16 autocast still runs
      there, but emulated, and can be slower than fp32.
    Returns ``(True/False, the reason in words)``."""
    import torch

    if torch.cuda.is_available():
        ok = bool(torch.cuda.is_bf16_supported())
        return ok, f"{torch.cuda.get_device_name(0)}: torch.cuda.is_bf16_supported() is {ok}"
    if platform.machine().lower() in ("x86_64", "amd64", "i686", "x86"):
        checks = {"AMX": getattr(torch.cpu, "_is_amx_tile_supported", None),
                  "AVX512-BF16": getattr(torch.cpu, "_is_avx512_bf16_supported", None)}
        found = [name for name, check in checks.items() if check is not None and check()]
        if found:
            return True, f"the CPU has {' and '.join(found)}"
        return False, "the CPU has neither AMX nor AVX512-BF16"
    return False, f"no native bf16 detected on a {platform.machine() or 'unknown'} CPU"


def get_precision(value: str | None = None, bf16_ok: bool = True, why_not: str = "") -> str:
    """The numeric precision a notebook trains and generates in: ``"bf16"`` or ``"fp32"``.

    ``value`` is the notebook's ``PRECISION`` parameter; empty means ``$SEARCHTUNE_PRECISION``, else
    ``auto``. ``auto`` is bf16 where :func:`native_bf16` finds the hardware for it and the stage
    passed its fp32-vs-bf16 check on dev (``bf16_ok``; ``why_not`` says why a stage stays fp32), else
    fp32. ``fp32`` and ``bf16`` force it (bf16 without native support runs, emulated and slow).
    Prints the choice and the reason. Raises ValueError naming the allowed values."""
    asked = (value or os.environ.get("SEARCHTUNE_PRECISION") or "auto").strip().lower()
    if asked not in PRECISIONS:
        raise ValueError(
            f"Unknown precision {asked!r} (from SEARCHTUNE_PRECISION or the parameters cell's PRECISION). "
            f"Use one of {', '.join(PRECISIONS)}, e.g. `make run SEARCHTUNE_PRECISION=fp32`."
        )
    native, reason = native_bf16()
    if asked != "auto":
        chosen, because = asked, f"asked for {asked} ({reason})"
    elif not native:
        chosen, because = "fp32", f"auto: {reason}"
    elif not bf16_ok:
        chosen, because = "fp32", f"auto: {reason}, but this stage stays fp32: {why_not}"
    else:
        chosen, because = "bf16", f"auto: {reason}"
    print(f"precision: {chosen} ({because})")
    return chosen


def autocast(precision: str):
    """``torch.autocast(device, dtype=torch.bfloat16)`` when ``precision`` is ``"bf16"`` (on the GPU
    when there is one, else the CPU); a no-op context for ``"fp32"``. Wrap generation and scoring in
    it; the trainers take ``bf16=True`` instead (they enter the same autocast themselves)."""
    import contextlib

    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    if precision != "bf16":
        raise ValueError(f"precision must be 'fp32' or 'bf16', not {precision!r} (use config.get_precision)")
    return torch.autocast("cuda" if torch.cuda.is_available() else "cpu", dtype=torch.bfloat16)


def hub_offline() -> bool:
    """True when the Hugging Face hub must not be contacted (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE set)."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def get_dataset_name(value: str | None = None, default: str = DEFAULT_DATASET) -> str:
    """The dataset a notebook runs on: ``value`` (the notebook's ``DATASET`` parameter) if set,
    else ``$SEARCHTUNE_DATASET``, else ``default`` (the profile's choice). A built-in name
    (``pydocs``, ``faqs``), a BEIR name, or a folder path."""
    return str(value or os.environ.get("SEARCHTUNE_DATASET") or default).strip()


def dataset_tag(dataset: str | Path) -> str:
    """Short name of a dataset for file names: ``"pydocs"``, ``"faqs"``, or a folder's name."""
    name = Path(str(dataset).rstrip("/\\")).name or str(dataset)
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name) or "data"


def artifact_dir(notebook: str, name: str = "", profile: str = DEFAULT_PROFILE,
                 dataset: str | Path = DEFAULT_DATASET) -> Path:
    """Folder where ``notebook`` saves what it trained: ``artifacts/<notebook>/<name>`` in the
    default profile, ``artifacts/<profile>/<notebook>/<name>`` in the others (so a smoke run
    never overwrites, or is fed by, the default run's models). A dataset other than ``pydocs``
    adds its tag: ``artifacts/<notebook>/<dataset>/<name>``."""
    base = ARTIFACTS_DIR / notebook if profile == DEFAULT_PROFILE else ARTIFACTS_DIR / profile / notebook
    tag = dataset_tag(dataset)
    if tag != DEFAULT_DATASET:
        base = base / tag
    return base / name if name else base


def results_path(notebook: str, profile: str = DEFAULT_PROFILE, dataset: str | Path = DEFAULT_DATASET) -> Path:
    """``results/<notebook>[.<dataset>][.<profile>].json``: the dataset part only when it is not
    ``pydocs``, the profile part only when it is not ``cpu`` (smoke and gpu files are not committed)."""
    tag = dataset_tag(dataset)
    parts = [notebook] + ([tag] if tag != DEFAULT_DATASET else []) + ([profile] if profile != DEFAULT_PROFILE else [])
    return RESULTS_DIR / (".".join(parts) + ".json")


def show_progress() -> bool:
    """Progress bars for a person waiting in a live session; none when the notebook is executed
    in batch (``make run`` and the tests set ``SEARCHTUNE_BATCH=1``), so stored outputs stay clean."""
    return os.environ.get("SEARCHTUNE_BATCH", "").strip().lower() not in ("1", "true", "yes", "on")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file + rename: never half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` through :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def machine_info() -> dict:
    """A small, path-free description of the machine a result was measured on."""
    info = {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.system()}
    try:  # the CPU model: timings from two machines are not comparable
        models = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")]
        info["cpu"] = models[0] if models else (platform.processor() or platform.machine())
    except OSError:
        info["cpu"] = platform.processor() or platform.machine()
    try:
        import torch

        info["torch"] = torch.__version__
        info["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
        info["native bf16"] = native_bf16()[1]
    except ImportError:  # pragma: no cover - torch is part of the stack
        pass
    return info


def progress_to_screen():
    """Context manager for library calls that always draw progress bars (``mine_hard_negatives``):
    in a live session the bars show; in batch runs (:func:`show_progress` is False) what the call
    writes to stderr — the bars — is dropped, and what it prints to stdout stays."""
    import contextlib
    import io

    return contextlib.nullcontext() if show_progress() else contextlib.redirect_stderr(io.StringIO())


def save_results(notebook: str, profile: str, metrics: dict, dataset: str | Path = DEFAULT_DATASET,
                 precision: str | None = None, **extra) -> Path:
    """Write :func:`results_path` (``results/<notebook>.json`` for pydocs in the default profile;
    ``results/<notebook>.faqs.json``, ``results/<notebook>.smoke.json`` ... otherwise, so a smoke
    run never overwrites the committed default-profile numbers).

    ``metrics`` is a JSON-serialisable dict; ``precision`` the run's (:func:`get_precision`);
    ``extra`` adds top-level keys (timings, sizes). Returns the path written.
    """
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"save_results({notebook!r}): precision must be 'fp32' or 'bf16' (config.get_precision), "
                         f"not {precision!r}")
    payload = {"notebook": notebook, "profile": profile, "dataset": dataset_tag(dataset), "precision": precision,
               "date": time.strftime("%Y-%m-%d"), "machine": machine_info(),
               "metrics": metrics, **extra}
    path = results_path(notebook, profile, dataset)
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=False, default=float) + "\n")
    return path


def load_results(notebook: str, profile: str = DEFAULT_PROFILE,
                 dataset: str | Path = DEFAULT_DATASET) -> dict | None:
    """Read what :func:`save_results` wrote for ``notebook``; None when it does not exist."""
    path = results_path(notebook, profile, dataset)
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def earlier_run(notebook: str, profile: str, dataset: str | Path, sizes: dict, system: str) -> dict | None:
    """Reuse an earlier notebook's scores for ``system`` when it ran on the same data.

    Returns ``{"metrics": {...}, "per_query": {...} or None, "source": "results/<file>"}`` when
    ``results/<notebook>…json`` exists for this profile and dataset, its ``sizes`` equal
    ``sizes`` (same passages, same split sizes) and it holds ``system``; otherwise None (then
    compute the scores yourself)."""
    res = load_results(notebook, profile, dataset)
    if not res or res.get("sizes") != sizes or system not in res.get("metrics", {}):
        return None
    return {"metrics": res["metrics"][system], "per_query": (res.get("per_query") or {}).get(system),
            "source": f"results/{results_path(notebook, profile, dataset).name}"}


class PeakMemory:
    """Context manager reporting wall time and peak resident memory (GB) of this process.

    Uses ``resource.getrusage`` (Linux/macOS): the peak is for the whole kernel process so far.
    """

    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        self.peak_gb = peak_memory_gb()
        return False


def peak_memory_gb() -> float:
    """Peak resident set size of this process in GB (0.0 where the OS does not report it)."""
    try:
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / (1024 ** 3 if sys.platform == "darwin" else 1024 ** 2)
    except Exception:  # pragma: no cover - Windows
        return 0.0


def quiet_notebook() -> None:
    """Keep notebook outputs readable: no progress bars from downloads/weight loading, no
    deprecation or future-API warning walls (library API drift is documented in the README).
    Training progress is shown as a loss curve instead of a progress bar."""
    import logging
    import warnings

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for category in (DeprecationWarning, FutureWarning, PendingDeprecationWarning):
        warnings.filterwarnings("ignore", category=category)
    warnings.filterwarnings("ignore", message=".*IProgress not found.*")
    try:
        from tqdm import TqdmWarning

        warnings.filterwarnings("ignore", category=TqdmWarning)
    except ImportError:  # pragma: no cover
        pass
    try:
        import transformers

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass
    for name in ("sentence_transformers", "datasets", "peft", "trl", "accelerate", "httpx"):
        logging.getLogger(name).setLevel(logging.ERROR)
