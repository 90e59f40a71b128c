"""Profiles, paths and results files shared by every notebook.

One switch selects the profile: the ``SEARCHTUNE_PROFILE`` environment variable (``smoke``,
``cpu`` — the default — or ``gpu``), which each notebook's papermill ``parameters`` cell reads.
The sizes themselves live in each notebook's parameters cell, not here.
"""
from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path

PROFILES = ("smoke", "cpu", "gpu")
DEFAULT_PROFILE = "cpu"

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


def hub_offline() -> bool:
    """True when the Hugging Face hub must not be contacted (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE set)."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def artifact_dir(notebook: str, name: str = "", profile: str = DEFAULT_PROFILE) -> Path:
    """Folder where ``notebook`` saves what it trained: ``artifacts/<notebook>/<name>`` in the
    default profile, ``artifacts/<profile>/<notebook>/<name>`` in the others (so a smoke run
    never overwrites, or is fed by, the default run's models)."""
    base = ARTIFACTS_DIR / notebook if profile == DEFAULT_PROFILE else ARTIFACTS_DIR / profile / notebook
    return base / name if name else base


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file + rename: never half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def machine_info() -> dict:
    """A small, path-free description of the machine a result was measured on."""
    info = {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.system()}
    try:
        import torch

        info["torch"] = torch.__version__
        info["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    except ImportError:  # pragma: no cover - torch is part of the stack
        pass
    return info


def save_results(notebook: str, profile: str, metrics: dict, **extra) -> Path:
    """Write ``results/<notebook>.json`` (or ``results/<notebook>.<profile>.json`` outside the
    default profile, so a smoke run never overwrites the committed default-profile numbers).

    ``metrics`` is a JSON-serialisable dict; ``extra`` adds top-level keys (timings, sizes).
    Returns the path written.
    """
    name = f"{notebook}.json" if profile == DEFAULT_PROFILE else f"{notebook}.{profile}.json"
    payload = {"notebook": notebook, "profile": profile,
               "date": time.strftime("%Y-%m-%d"), "machine": machine_info(),
               "metrics": metrics, **extra}
    path = RESULTS_DIR / name
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=False, default=float) + "\n")
    return path


def load_results(notebook: str, profile: str = DEFAULT_PROFILE) -> dict | None:
    """Read what :func:`save_results` wrote for ``notebook``; None when it does not exist."""
    name = f"{notebook}.json" if profile == DEFAULT_PROFILE else f"{notebook}.{profile}.json"
    path = RESULTS_DIR / name
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


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
