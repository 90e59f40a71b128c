"""Notebook 01's embedder training and notebook 03's generator SFT as a command, for 1..N processes.

    python -m searchtune_utils.train embedder --profile cpu                      # one process
    accelerate launch --config_file searchtune_utils/accelerate/multi_gpu.yaml --num_processes 4 \\
        -m searchtune_utils.train embedder --profile gpu                        # DDP on 4 GPUs

Same parameters and the same code as the notebooks: sizes, model ids and seeds are read from each
notebook's ``parameters`` cell (:func:`notebook_parameters`), the loss, trainer and SFT recipe are
the notebooks' own ``#@save`` cells (:mod:`searchtune_utils.lessons`); nothing is repeated here.
The effective batch stays the profile's whatever the number of processes: each process gets ``batch_size // processes`` rows
(embedder) or accumulates ``grad_accum * batch_size // (per-device batch * processes)`` micro-batches
(generator). Only the main process saves and prints summaries. The default output folders are not
the notebooks' (``model-ddp``, ``adapter-ddp``): a run of this module never replaces the model a
notebook measured.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from .config import PRECISIONS, PROFILES, ROOT, artifact_dir, get_dataset_name, get_precision, get_profile, quiet_notebook

ACCELERATE_CONFIGS = Path(__file__).resolve().parent / "accelerate"  # shipped launch configs (*.yaml)
EMBEDDER_NOTEBOOK = "01_finetune_embeddings"
GENERATOR_NOTEBOOK = "03_finetune_generator_sft"
SUMMARY_FILE = "searchtune_train.json"  # written next to the saved model by the main process


# --------------------------------------------------------------------------- pure parts

def _shown(path: Path) -> str:
    """A path for messages: relative to the repository when inside it, else as given (no absolute local paths)."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def notebook_parameters(notebook: str | Path) -> dict:
    """Run the code cell tagged ``parameters`` of ``notebook`` (a name under ``notebooks/`` or a
    path) in an empty namespace and return the names it assigns (``SEED``, ``PROFILES`` ...).

    Raises FileNotFoundError / ValueError naming the notebook file and the fix."""
    from .lessons import notebook_cells

    path, cells = notebook_cells(notebook)
    cells = [c for c in cells if c.get("cell_type") == "code" and "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"{_shown(path)}: expected one code cell tagged 'parameters', found {len(cells)}; "
                         "tag the cell that sets SEED and PROFILES (Jupyter: View > Cell Toolbar > Tags)")
    source = "".join(cells[0]["source"])
    namespace: dict = {}
    try:
        exec(compile(source, f"{_shown(path)} [parameters cell]", "exec"), namespace)  # assignments only
    except Exception as exc:
        raise ValueError(f"{_shown(path)}: its parameters cell failed to run: {type(exc).__name__}: {exc}") from exc
    namespace.pop("__builtins__", None)
    missing = [k for k in ("SEED", "PROFILES") if k not in namespace]
    if missing:
        raise ValueError(f"{_shown(path)}: the parameters cell does not set {', '.join(missing)}")
    return namespace


def profile_parameters(notebook: str, profile: str) -> tuple[dict, int]:
    """``(PROFILES[profile], SEED)`` from ``notebook``'s parameters cell; ValueError for an unknown profile."""
    params = notebook_parameters(notebook)
    if profile not in params["PROFILES"]:
        raise ValueError(f"notebooks/{notebook}.ipynb: no profile {profile!r} in PROFILES "
                         f"(it has {', '.join(params['PROFILES'])})")
    return params["PROFILES"][profile], params["SEED"]


def world() -> tuple[int, int]:
    """``(number of processes, this process's rank)`` from the launcher's environment
    (``accelerate launch`` / ``torchrun`` set WORLD_SIZE and RANK, mpirun its own); ``(1, 0)`` when run plainly."""
    def first(names, default):
        for name in names:
            if os.environ.get(name, "").strip():
                return int(os.environ[name])
        return default

    return (first(("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE"), 1),
            first(("RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "MV2_COMM_WORLD_RANK"), 0))


def _divisors(n: int) -> str:
    return ", ".join(str(d) for d in range(1, n + 1) if n % d == 0)


def per_device_batch(batch_size: int, processes: int, notebook: str = EMBEDDER_NOTEBOOK) -> int:
    """The rows each process takes per step so that ``processes`` of them make the profile's batch.

    ValueError naming the notebook and the fix when ``batch_size`` does not divide evenly."""
    if processes < 1:
        raise ValueError(f"the number of processes must be at least 1, got {processes}")
    if batch_size % processes:
        raise ValueError(
            f"batch_size={batch_size} (notebooks/{notebook}.ipynb, parameters cell) cannot be split evenly over "
            f"{processes} processes: the per-device batch batch_size // processes must be a whole number to keep the "
            f"effective batch at {batch_size}. Launch with a number of processes that divides it ({_divisors(batch_size)}), "
            "or change batch_size in the notebook's parameters cell.")
    return batch_size // processes


def accumulation_steps(batch_size: int, grad_accum: int, processes: int, per_device: int | None = None,
                       notebook: str = GENERATOR_NOTEBOOK) -> tuple[int, int]:
    """``(per-device batch, gradient_accumulation_steps)`` keeping the effective batch
    ``batch_size * grad_accum`` (the profile's) with ``processes`` processes.

    ``per_device`` defaults to the profile's ``batch_size`` shared out over the processes
    (``batch_size // processes`` when it divides, else ``batch_size``). ValueError naming the fix
    when ``per_device * processes`` does not divide the effective batch."""
    effective = batch_size * grad_accum
    if per_device is None:
        per_device = batch_size // processes if processes >= 1 and batch_size % processes == 0 else batch_size
    if per_device < 1 or processes < 1:
        raise ValueError(f"per-device batch and number of processes must be at least 1, got {per_device} and {processes}")
    if effective % (per_device * processes):
        ok = [p for p in range(1, effective + 1) if effective % (per_device * p) == 0]
        fixes = [f"launch with {' or '.join(map(str, ok))} process(es)"] if ok else []
        fixes += ["pass a smaller --per-device-batch"] if per_device > 1 else []
        fixes += ["raise grad_accum in the notebook's parameters cell"]
        raise ValueError(
            f"the effective batch batch_size x grad_accum = {batch_size} x {grad_accum} = {effective} "
            f"(notebooks/{notebook}.ipynb, parameters cell) is not a multiple of per-device batch x processes = "
            f"{per_device} x {processes}: gradient_accumulation_steps = {effective} / {per_device * processes} is not "
            f"a whole number. Fix: {', or '.join(fixes)}.")
    return per_device, effective // (per_device * processes)


def _device_split_sampler_class():
    """:class:`NoDuplicatesBatchSampler` cut into per-device pieces (built lazily: importing
    sentence-transformers is slow, and the pure helpers above do not need it)."""
    from sentence_transformers.base.sampler import DefaultBatchSampler, NoDuplicatesBatchSampler
    from sentence_transformers.util import get_world_size

    class DeviceSplitNoDuplicatesBatchSampler(DefaultBatchSampler):
        """Draw the 1-process run's batches (``NO_DUPLICATES`` over the *global* batch of
        ``batch_size * world`` rows, same seed and epoch), then yield each as ``world`` equal
        consecutive pieces. accelerate hands the i-th batch of every ``world`` to rank i, so rank r
        gets piece r: the ranks together train on exactly the global batch a single process would,
        and no text appears twice in it (a duplicate across devices would be a false in-batch
        negative once the loss gathers embeddings across devices).

        ``drop_last`` is ignored, as in one process: sentence-transformers turns it on under DDP so
        that no rank waits for a batch another rank does not have, and here every rank gets a
        piece of every global batch anyway. A global batch cut short by the no-duplicates rule (or
        the epoch's end) loses its last ``< world`` rows instead, as the gather needs pieces of one
        size; ``batch_size`` is None so that accelerate also passes on those shorter pieces."""

        def __init__(self, dataset, batch_size, drop_last, valid_label_columns=None, generator=None, seed=0,
                     world: int | None = None):
            self.world = world or get_world_size()  # `world`: for tests without a process group
            self.inner = NoDuplicatesBatchSampler(dataset, batch_size=batch_size * self.world, drop_last=False,
                                                  valid_label_columns=valid_label_columns, generator=generator, seed=seed)
            super().__init__(dataset, batch_size=batch_size, drop_last=False,
                             valid_label_columns=valid_label_columns, generator=generator, seed=seed)
            self.batch_size = None  # pieces vary in length (see above)

        def set_epoch(self, epoch: int) -> None:
            super().set_epoch(epoch)
            self.inner.set_epoch(epoch)

        def __iter__(self):
            for batch in self.inner:
                piece = len(batch) // self.world
                if piece:
                    yield from (batch[r * piece:(r + 1) * piece] for r in range(self.world))

        def __len__(self) -> int:
            return len(self.inner) * self.world

    return DeviceSplitNoDuplicatesBatchSampler


# --------------------------------------------------------------------------- embedder (notebook 01)

def train_embedder(opts) -> Path:
    """Notebook 01's training without its evaluations: data, hard-negative mining, MNRL, trainer, save."""
    profile = get_profile(opts.profile)
    P, SEED = profile_parameters(EMBEDDER_NOTEBOOK, profile)
    dataset = get_dataset_name(opts.dataset, P["dataset"])
    processes, rank = world()
    main = rank == 0
    per_device = per_device_batch(P["batch_size"], processes)  # checked before the slow imports
    out = Path(opts.output) if opts.output else artifact_dir(EMBEDDER_NOTEBOOK, "model-ddp", profile, dataset)
    max_queries = opts.max_queries if opts.max_queries is not None else P["max_queries"]

    quiet_notebook()  # before the imports: no deprecation walls or weight-loading bars; trainer log lines stay
    import torch
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.util import mine_hard_negatives

    from . import data
    from .config import progress_to_screen
    from .lessons import embedder_loss, embedder_trainer  # notebook 01's #@save cells: its very training step
    from .models import resolve_model

    torch.manual_seed(SEED)
    start = time.perf_counter()

    # Every rank loads and cuts the data: cheap, and deterministic (stable hashes of ids and SEED).
    corpus, queries, qrels, _ = data.load_beir(data.get_dataset(dataset))
    corpus, queries, qrels = data.subsample(corpus, queries, qrels, max_queries, P["max_corpus"], seed=SEED)
    data.check_no_leakage(qrels, queries)
    train_pairs = data.training_pairs(corpus, queries, qrels["train"], seed=SEED)

    state = PartialState(cpu=not torch.cuda.is_available())  # sets up the process group (gloo on CPU), as the trainer will
    if state.num_processes != processes:
        raise RuntimeError(f"the launcher reports {processes} processes but accelerate sees {state.num_processes}: "
                           "launch with `accelerate launch` or `torchrun`, not by starting copies by hand")

    # One copy mines and is trained (mining does not change the weights; notebook 01 keeps a second,
    # untouched copy for its before/after evaluations). On cuda:LOCAL_RANK under a launcher.
    model = SentenceTransformer(resolve_model(P["embedder"]))
    model.max_seq_length = P["max_seq_length"]
    if opts.dropout_off:  # no random masks, which differ between 1 and N processes: a like-for-like comparison
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
    # Hard negatives: mined once, by the main process, with the untrained model (as notebook 01 does
    # before training), then sent to the other ranks. Every rank mining for itself would give the
    # same rows only if the encodings were bit-identical on every device, which GPUs do not promise
    # (a near-tie in the top-k could then flip): one copy of the rows is the safe way, and the wall
    # time is the same (the other ranks would have been mining at the same time).
    rows = [None]
    if main:
        with progress_to_screen():
            if P["num_negatives"] > 0:
                mined = mine_hard_negatives(
                    train_pairs.select_columns(["anchor", "positive"]), model, corpus=None,
                    range_max=P["range_max"], relative_margin=P["relative_margin"], num_negatives=P["num_negatives"],
                    sampling_strategy="top", output_format="n-tuple", batch_size=P["encode_batch_size"],
                    use_faiss=False, verbose=True)
            else:
                mined = train_pairs.select_columns(["anchor", "positive"])
        rows = [mined.to_dict()]
    if processes > 1:
        broadcast_object_list(rows, from_process=0)
    train_dataset = Dataset.from_dict(rows[0])

    # Notebook 01's loss, with gather_across_devices=True: each rank scores its own questions
    # against the passages of *all* ranks (the profile's whole batch, as in one process), and the
    # gradients flow back through the gather; DDP's gradient average over ranks then equals the
    # one-process gradient of the mean loss. Without it every rank would see only its batch_size //
    # processes passages as negatives. With one process it changes nothing.
    loss = embedder_loss(model, P, gather_across_devices=True)
    # Notebook 01's trainer. The per-device batch: accelerate gives every rank its own batches (it
    # does not split one), so `processes` ranks x (batch_size // processes) rows = the profile's batch
    # per optimiser step; the sampler makes that global batch the very one a single process would draw.
    trainer = embedder_trainer(
        model, train_dataset, loss, out.with_name(out.name + "-checkpoints"), P, seed=SEED,  # nothing is saved there
        precision=get_precision(opts.precision),
        batch_size=per_device, max_steps=opts.max_steps if opts.max_steps else -1,
        **({} if processes == 1 else {"batch_sampler": _device_split_sampler_class()}))
    trainer.train()
    if main:
        model.save(str(out))
        _write_summary(out, "embedder", profile, processes, start, trainer, dataset=dataset, loss=type(loss).__name__,
                       rows=len(train_dataset), per_device_batch=per_device, effective_batch=per_device * processes,
                       gather_across_devices=True, base_model=P["embedder"], dropout=not opts.dropout_off)
    _wait_for_all(processes)
    return out


# --------------------------------------------------------------------------- generator (notebook 03)

def train_generator(opts) -> Path:
    """Notebook 03's SFT with LoRA on the training records notebook 03 wrote (or ``--data``)."""
    profile = get_profile(opts.profile)
    P, SEED = profile_parameters(GENERATOR_NOTEBOOK, profile)
    processes, rank = world()
    per_device, accum = accumulation_steps(P["batch_size"], P["grad_accum"], processes, opts.per_device_batch)
    data_file = Path(opts.data) if opts.data else artifact_dir(GENERATOR_NOTEBOOK, "data", profile) / "train.jsonl"
    if not data_file.is_file():
        raise FileNotFoundError(f"{_shown(data_file)}: no training records. Run notebooks/{GENERATOR_NOTEBOOK}.ipynb "
                                f"in the '{profile}' profile first (it writes this file), or pass --data FILE "
                                "(JSONL, one record per line as written by generation.write_generation_jsonl)")
    out = Path(opts.output) if opts.output else artifact_dir(GENERATOR_NOTEBOOK, "adapter-ddp", profile)

    quiet_notebook()
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from . import data, generation, models
    from .generator_training import DecisionWeightedSFTTrainer
    from .lessons import lora_config, sft_config  # notebook 03's #@save cells: its very SFT recipe

    torch.manual_seed(SEED)
    start = time.perf_counter()
    datasets.disable_progress_bars()
    records = data.load_generation_jsonl(data_file)
    # In the file's order, as notebook 03 wrote it: minimal pairs next to each other, already shuffled.
    train_ds = datasets.Dataset.from_list([generation.chat_example(r, few_shot=False) for r in records])
    generator_path = models.resolve_model(P["generator"])
    tokenizer = AutoTokenizer.from_pretrained(generator_path)
    # per-device batch x processes x accumulation = the profile's batch_size x grad_accum. The loss
    # is a mean over the completion tokens of the whole accumulated, all-device batch
    # (transformers' average_tokens_across_devices, on by default), as in one process.
    sft_args = sft_config(
        out.with_name(out.name + "-checkpoints"), {**P, "batch_size": per_device, "grad_accum": accum}, SEED,
        get_precision(opts.precision),
        train_sampling_strategy="sequential",  # as notebook 03: each minimal pair in one batch
        gradient_checkpointing=False,  # no recomputation: the same gradients, faster; memory is not the limit at 135M
        max_steps=opts.max_steps if opts.max_steps else -1)
    if sft_args.world_size != processes:  # touching world_size sets up the process group
        raise RuntimeError(f"the launcher reports {processes} processes but the trainer sees {sft_args.world_size}: "
                           "launch with `accelerate launch` or `torchrun`, not by starting copies by hand")
    model = AutoModelForCausalLM.from_pretrained(generator_path, dtype=torch.float32)
    trainer = DecisionWeightedSFTTrainer(model=model, args=sft_args, train_dataset=train_ds, processing_class=tokenizer,
                                         peft_config=lora_config(P), decision_weight=P["decision_weight"])  # as notebook 03
    trainer.train()
    if rank == 0:
        trainer.model.save_pretrained(out)  # the LoRA adapter (safetensors)
        tokenizer.save_pretrained(out)
        _write_summary(out, "generator", profile, processes, start, trainer, examples=len(train_ds),
                       per_device_batch=per_device, gradient_accumulation_steps=accum,
                       effective_batch=per_device * processes * accum, base_model=P["generator"],
                       data=data_file.name)
    _wait_for_all(processes)
    return out


# --------------------------------------------------------------------------- shared

def _write_summary(out: Path, command: str, profile: str, processes: int, start: float, trainer, **extra) -> None:
    """``<out>/searchtune_train.json``: what ran (profile, processes, batches, steps, logged losses), and a printed line."""
    from .config import atomic_write_text

    history = trainer.state.log_history
    losses = [h["loss"] for h in history if "loss" in h]  # every logging_steps steps, averaged over the processes
    # the trainer's mean over the run (under DDP, steps after the last log line count the main process's share only)
    train_loss = next((h["train_loss"] for h in reversed(history) if "train_loss" in h), None)
    summary = {"command": command, "profile": profile, "processes": processes, **extra,
               "steps": trainer.state.global_step, "losses": losses, "train_loss": train_loss,
               "seconds": round(time.perf_counter() - start, 1)}
    atomic_write_text(out / SUMMARY_FILE, json.dumps(summary, indent=1) + "\n")
    print(f"{command}: {summary['steps']} steps on {processes} process(es), effective batch "
          f"{extra.get('effective_batch')}, mean training loss {train_loss if train_loss is not None else float('nan'):.4f}; "
          f"saved to {_shown(out)}/ in {summary['seconds']:.0f} s", flush=True)


def _wait_for_all(processes: int) -> None:
    """Let no rank exit before the main process has saved (and tear the process group down cleanly)."""
    if processes > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


def build_parser() -> argparse.ArgumentParser:
    configs = ", ".join(sorted(p.name for p in ACCELERATE_CONFIGS.glob("*.yaml")))
    parser = argparse.ArgumentParser(
        prog="python -m searchtune_utils.train",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train notebook 01's embedder or notebook 03's generator (SFT + LoRA) outside Jupyter, in one "
                    "process or data-parallel (DDP) under `accelerate launch` / `torchrun`. Sizes, model ids and seeds "
                    "come from the notebook's parameters cell; the effective batch is the profile's for any number "
                    "of processes.",
        epilog=f"launch configs shipped in searchtune_utils/accelerate/: {configs}\n"
               "examples:\n"
               "  python -m searchtune_utils.train embedder --profile smoke\n"
               "  accelerate launch --config_file searchtune_utils/accelerate/multi_gpu.yaml --num_processes 4 \\\n"
               "      -m searchtune_utils.train embedder --profile gpu")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{embedder,generator}")

    def common(p, default_output):
        p.add_argument("--profile", choices=PROFILES, default=None,
                       help="smoke | cpu | gpu (default: $SEARCHTUNE_PROFILE, else cpu), as in the notebooks")
        p.add_argument("--output", metavar="DIR", default=None,
                       help=f"folder to save to (default: {default_output}; never the notebook's own folder)")
        p.add_argument("--max-steps", type=int, default=None, metavar="N",
                       help="stop after N optimiser steps (default: the profile's epochs)")
        p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                       help="fp32 (default) | bf16 | auto: bf16 autocast where the GPU or CPU has native bf16 "
                            "(config.get_precision, as the notebooks' PRECISION)")

    emb = sub.add_parser("embedder", help="notebook 01: MultipleNegativesRankingLoss with mined hard negatives",
                         description="Notebook 01's training: pairs from the training split, hard negatives mined "
                                     "with the base model (main process), MNRL with in-batch negatives gathered "
                                     "across devices, per-device batch = batch_size // processes.")
    common(emb, "artifacts/[<profile>/]01_finetune_embeddings/[<dataset>/]model-ddp")
    emb.add_argument("--dataset", default=None, metavar="NAME",
                     help="pydocs | faqs | a BEIR folder (default: $SEARCHTUNE_DATASET, else the profile's)")
    emb.add_argument("--max-queries", type=int, default=None, metavar="N",
                     help="keep at most N questions per split (default: the profile's max_queries)")
    emb.add_argument("--dropout-off", action="store_true",
                     help="train without dropout (every nn.Dropout at p=0): runs on 1 and N processes then differ only by "
                          "the order of floating-point sums")

    gen = sub.add_parser("generator", help="notebook 03: SFT with LoRA (TRL SFTTrainer)",
                         description="Notebook 03's SFT: LoRA on the chat records of notebook 03's train.jsonl, "
                                     "gradient_accumulation_steps = grad_accum x batch_size // (per-device batch x "
                                     "processes). Saves the LoRA adapter (merge it with peft's merge_and_unload).")
    common(gen, "artifacts/[<profile>/]03_finetune_generator_sft/adapter-ddp")
    gen.add_argument("--data", default=None, metavar="FILE",
                     help="training records, JSONL (default: the train.jsonl notebook 03 wrote for the profile)")
    gen.add_argument("--per-device-batch", type=int, default=None, metavar="N",
                     help="rows per process per micro-step (default: the profile's batch_size)")
    return parser


def main(argv: list[str] | None = None) -> int:
    opts = build_parser().parse_args(argv)
    try:
        (train_embedder if opts.command == "embedder" else train_generator)(opts)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        if type(exc) in (ValueError, FileNotFoundError, RuntimeError) and _ours(exc):
            print(f"error: {exc}", file=sys.stderr)  # a usage error raised here: the message says it all
            return 2
        raise
    return 0


def _ours(exc: BaseException) -> bool:
    """True for the errors this module raises on purpose (short message, no traceback needed)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and Path(tb.tb_frame.f_code.co_filename).resolve() == Path(__file__).resolve()


if __name__ == "__main__":
    sys.exit(main())
