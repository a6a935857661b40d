"""`pretrain`: MLM (+ NSP/SOP) or left-to-right pre-training on prepared shards, in phases, with the
one training loop.

Output folder: `model/` (Hugging Face layout + tokenizer, loads for fine-tuning and in
transformers), `metrics.jsonl`, `pretraining.png` and `checkpoints/phase-N/step-*` for resuming.
"""

from __future__ import annotations

import json
import math
import shutil
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

import torch

from bertkit.config import PRESETS, EncoderConfig, preset
from bertkit.families import FAMILY_TABLE
from bertkit.io import atomic_dir, atomic_write_text
from bertkit.model import BertkitModel, build, load_model
from bertkit.model.checkpoint import write_model_files
from bertkit.pretrain.masking import (
    DEFAULT_MIX,
    OBJECTIVES,
    MLMCollator,
    Objective,
    mismatch_note,
    parse_mask_mix,
)
from bertkit.pretrain.objectives import evaluate_pretraining, pretraining_loss
from bertkit.pretrain.shards import Manifest, PretrainDataset
from bertkit.train import TrainConfig, TrainState, distributed, fit, native_bf16, set_seed
from bertkit.train.checkpoint import check_run, fingerprint_data, train_fingerprint
from bertkit.train.history import plot_history
from bertkit.train.outputs import check_output, mark_run
from bertkit.train.validation import check_options

PLOT_KEYS = ("mlm_loss", "mlm_accuracy", "lm_loss", "lm_accuracy", "perplexity", "nsp_accuracy", "sop_accuracy")


@dataclass
class _Phase:
    data: PretrainDataset
    steps: int | None  # optimizer steps; None: `epochs` passes over the data
    offset: int  # global step at which this phase starts


# ----------------------------------------------------------------------------- model
def _sized(config: EncoderConfig, layers: int | None, hidden: int | None, heads: int | None,
           intermediate: int | None) -> EncoderConfig:
    changes: dict[str, Any] = {}
    if hidden is not None:
        changes |= dict(hidden_size=hidden, intermediate_size=4 * hidden)
        if not config.table.factorised_embeddings:
            changes["embedding_size"] = hidden
        if heads is None and hidden % config.num_heads:
            changes["num_heads"] = max(1, hidden // 64)
    for key, value in (("num_layers", layers), ("num_heads", heads), ("intermediate_size", intermediate)):
        if value is not None:
            changes[key] = value
    return config.replace(**changes)


def _base_preset(family_name: str) -> str:
    """The base preset of the tokenizer's family (BERT's for a tokenizer of another kind)."""
    return FAMILY_TABLE[family_name].preset if family_name in FAMILY_TABLE else "bert-base-uncased"


def _new_config(model: str | dict | EncoderConfig | None, manifest: Manifest, max_length: int) -> EncoderConfig:
    if isinstance(model, EncoderConfig):
        config = model
    elif isinstance(model, dict):
        config = EncoderConfig(**{"family": manifest.family, **model})
    else:
        config = preset(model or _base_preset(manifest.family))
    pad = manifest.special_ids["pad"]
    offset = config.table.position_offset(pad)
    return config.replace(vocab_size=manifest.vocab_size, pad_token_id=pad, position_offset=offset,
                          max_positions=max(config.max_positions, max_length + offset))


def build_pretraining_model(model: str | dict | EncoderConfig | None, manifest: Manifest, *,
                            max_length: int, layers: int | None = None, hidden: int | None = None,
                            heads: int | None = None, intermediate: int | None = None,
                            objective: Objective = "mlm", pair_objective: bool = True) -> BertkitModel:
    """A model with the pre-training head the data calls for: MLM + NSP/SOP for nsp/sop shards of a
    BERT/ALBERT model (unless `pair_objective=False`), MLM alone otherwise; `objective=
    "left_to_right"` makes the encoder causal and uses the MLM head for next tokens, without a pair
    head. `model` is a preset name, config (dict or EncoderConfig), None (the base preset of the
    tokenizer's family) or an existing checkpoint (continued pre-training: its missing MLM head is
    initialised, tied to its embeddings)."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    causal = objective == "left_to_right"
    pair = manifest.pair_label is not None and pair_objective and not causal
    is_checkpoint = isinstance(model, (str, Path)) and str(model).split("/")[-1].lower() not in PRESETS
    if is_checkpoint:
        loaded = load_model(model, head="mlm")  # only to read the family
        head = "pretraining" if pair and loaded.config.table.pair_head else "mlm"
        result = load_model(model, head=head) if head != "mlm" else loaded
        if manifest.vocab_size > result.config.vocab_size:
            raise ValueError(
                f"the corpus was tokenised with {manifest.vocab_size} ids but {model} has "
                f"{result.config.vocab_size}: prepare the corpus with the checkpoint's own tokenizer")
        if any(v is not None for v in (layers, hidden, heads, intermediate)):
            raise ValueError("layers/hidden/heads/intermediate cannot change an existing checkpoint")
        if result.config.causal != causal:
            raise ValueError(f"{model} is {'a causal' if result.config.causal else 'a bidirectional'} "
                             f"encoder and cannot continue with objective={objective!r}")
        return result.train()
    config = _sized(_new_config(model, manifest, max_length), layers, hidden, heads, intermediate)  # type: ignore[arg-type]
    if causal:
        config = config.replace(causal=True)
    head = "pretraining" if pair and config.table.pair_head else "mlm"
    return build(config, head=head)


def _with_dropout(net: BertkitModel, p: float) -> BertkitModel:
    """The same weights in a model whose every dropout is `p` (0 for short budgets: no noise to
    average out, and a faster step)."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {p}")
    config = net.config.replace(hidden_dropout=p, attention_dropout=p)
    changed = BertkitModel(config, head=net.head_name, num_labels=net.num_labels)
    changed.load_state_dict(net.state_dict())
    return changed.train(net.training)


# ----------------------------------------------------------------------------- callbacks
class TimeBudget:
    """Stop training cleanly once `minutes` have passed since construction (all ranks agree)."""

    def __init__(self, minutes: float | None) -> None:
        self.deadline = None if minutes is None else time.monotonic() + 60.0 * minutes
        self.expired = False

    def on_step_end(self, state: TrainState) -> None:
        if self.deadline is None:
            return
        # rank 0's clock decides; a rank stopping alone would hang the others in all-reduce
        late = float(time.monotonic() >= self.deadline and distributed.is_main())
        if distributed.all_reduce_mean(late).item() > 0:
            self.expired = state.should_stop = True


class MetricsLog:
    """Rank 0 writes every history record, phase-tagged, to `metrics.jsonl` as it appears."""

    def __init__(self, path: Path) -> None:
        self.path, self.done, self.current, self.phase = path, [], [], (1, 0)

    def start_phase(self, number: int, offset: int) -> None:
        self.done += self.current
        self.current, self.phase = [], (number, offset)

    def records(self) -> list[dict[str, Any]]:
        return self.done + self.current

    def update(self, records: list[dict[str, Any]]) -> None:
        """Rewrite the file when there are new records (a resumed run restores its old ones)."""
        if distributed.is_main() and len(records) != len(self.current):
            number, offset = self.phase
            self.current = [_tagged(r, number, offset) for r in records]
            atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in self.records()))

    def on_step_end(self, state: TrainState) -> None:
        self.update(state.history.records)


def _tagged(record: dict[str, Any], phase: int, offset: int) -> dict[str, Any]:
    out = {"phase": phase, "global_step": offset + record["step"], **record}
    for key in ("mlm_loss", "lm_loss"):
        if key in record:
            out["perplexity"] = math.exp(min(record[key], 50.0))
    return out


# ----------------------------------------------------------------------------- outputs
def save_pretrained(model: BertkitModel, tokenizer_dir: Path, folder: Path) -> Path:
    """config.json + model.safetensors (HF layout, with the MLM/NSP head) + the tokenizer files."""
    with atomic_dir(folder) as tmp:
        write_model_files(model, tmp)
        for file in sorted(tokenizer_dir.iterdir()):
            if file.is_file():
                shutil.copyfile(file, tmp / file.name)
    return folder


# ----------------------------------------------------------------------------- the run
def _phases(data_dir: str | Path | None, phases: Sequence[tuple[str | Path, float]] | None,
            max_steps: int | None) -> list[_Phase]:
    if (data_dir is None) == (phases is None):
        raise ValueError("give either data_dir (one prepared corpus) or phases [(dir, fraction), ...]")
    plan = [(data_dir, 1.0)] if phases is None else [(d, float(f)) for d, f in phases]
    if len(plan) > 1 and max_steps is None:
        raise ValueError("a multi-phase run needs max_steps: each phase gets its fraction of them")
    if any(f <= 0 for _, f in plan):
        raise ValueError(f"phase fractions must be positive, got {[f for _, f in plan]}")
    total_fraction, out, offset = sum(f for _, f in plan), [], 0
    for i, (folder, fraction) in enumerate(plan):
        steps = None
        if max_steps is not None:
            last = i == len(plan) - 1
            steps = max_steps - offset if last else max(1, round(max_steps * fraction / total_fraction))
        out.append(_Phase(PretrainDataset(folder), steps, offset))
        offset += steps or 0
    first = out[0].data.manifest
    for phase in out[1:]:
        m = phase.data.manifest
        if (m.vocab_size, m.format) != (first.vocab_size, first.format):
            raise ValueError(f"phase data {phase.data.folder} has vocab {m.vocab_size}/{m.format}, "
                             f"the first phase {first.vocab_size}/{first.format}: prepare all "
                             "phases with the same tokenizer and format")
    return out


def pretrain(
    data_dir: str | Path | None,
    out_dir: str | Path,
    *,
    phases: Sequence[tuple[str | Path, float]] | None = None,
    model: str | dict | EncoderConfig | None = None,
    layers: int | None = None,
    hidden: int | None = None,
    heads: int | None = None,
    intermediate: int | None = None,
    dropout: float | None = None,
    objective: Objective = "mlm",
    pair_objective: bool = True,
    mask_mix: Sequence[float] | str | None = None,
    lr: float = 1e-4,
    batch_size: int = 32,
    grad_accum: int = 1,
    optimizer: Literal["adamw", "lamb"] = "adamw",
    weight_decay: float = 0.01,
    warmup: float = 0.01,
    max_steps: int | None = None,
    epochs: int = 1,
    max_minutes: float | None = None,
    bf16: bool | None = None,
    eval_data: str | Path | None = None,
    eval_every: int | None = None,
    checkpoint_every: int | None = 1000,
    keep_checkpoints: int = 2,
    resume: bool = True,
    force_resume: bool = False,
    seed: int = 42,
    log_every: int = 10,
    progress: bool = True,
    callbacks: Sequence[Any] = (),
    device: str | torch.device | None = None,
) -> Path:
    """Pre-train with masked-LM (+ NSP/SOP) or left-to-right LM on prepared shards; return `out_dir/model`.

    `data_dir` is a folder made by `prepare_corpus`; or `phases=[(dir_128, 0.9), (dir_512, 0.1)]`
    runs BERT's two-phase schedule, each phase with its own warmup and linear decay over its share
    of `max_steps`. `batch_size` is per process and micro-batch; the effective batch is
    batch_size × grad_accum × world size. `max_minutes` stops cleanly at a time budget (the LR
    schedule still follows `max_steps`) and saves. `resume` continues from the newest checkpoint
    in `out_dir/checkpoints` (any world size) after checking that they were made with the same
    data, model and options (`force_resume` continues despite changed data or options). Launched
    by `torchrun`, it trains with DDP, each rank on its share of the batches, and only rank 0
    writes. `bf16=None` uses bf16 autocast
    where the hardware computes in bf16 natively (Ampere+ GPUs; CPUs with AVX512-BF16 or AMX,
    where it is about 1.6x faster than float32).

    The BERT paper's ablations: `objective="left_to_right"` trains a causal encoder (position t
    sees positions <= t) to predict token t + 1, without NSP; `pair_objective=False` drops the
    NSP/SOP loss (and head) on nsp/sop data; `mask_mix` ("80/10/10", or three shares) replaces the
    corpus's [MASK]/random/unchanged mix for dynamic masking.

    Args:
        data_dir: prepared corpus folder
        out_dir: output folder: model/, metrics.jsonl, checkpoints/
        phases: [(prepared corpus folder, share of max_steps), ...] instead of data_dir
        model: preset name, EncoderConfig fields (a dict, or on the command line a JSON file of
            them), or a checkpoint to continue pre-training (default: the tokenizer family's base
            preset)
        layers: override the preset's layers
        hidden: override the preset's hidden size (and its intermediate size, 4 × hidden)
        heads: override the preset's attention heads
        intermediate: override the preset's intermediate size
        dropout: dropout during pre-training only (0 suits short budgets); the saved config keeps
            the model's own
        objective: mlm (masked LM, + NSP/SOP on pair data) or left_to_right (causal encoder,
            next-token loss, no NSP)
        pair_objective: NSP/SOP loss on nsp/sop data (--no-pair-objective: MLM alone, same samples)
        mask_mix: [MASK]/random/unchanged shares for dynamic masking, e.g. 100/0/0 (default: the
            prepared corpus's, normally 80/10/10)
        lr: peak learning rate
        batch_size: per process and micro-batch
        grad_accum: micro-batches per optimizer step
        optimizer: adamw or lamb (large batches)
        weight_decay: decoupled weight decay
        warmup: < 1: fraction of steps; >= 1: steps
        max_steps: optimizer steps (sets the LR schedule's length)
        epochs: passes over the data, used when max_steps is not given
        max_minutes: stop cleanly and save after this long
        bf16: bf16 autocast (default: on where the hardware computes bf16 natively: Ampere+ GPUs,
            CPUs with AVX512-BF16 or AMX)
        eval_data: prepared held-out corpus for MLM accuracy / perplexity
        eval_every: evaluate on eval_data every N steps (default: each epoch)
        checkpoint_every: write a resumable checkpoint every N steps
        keep_checkpoints: checkpoints kept per phase
        resume: continue from the newest checkpoint in OUT/checkpoints
        force_resume: resume even though the data or options differ from the checkpoints'
        seed: random seed (initial weights, data order, masks)
        log_every: write a metrics record every N steps
        progress: show a progress bar
        callbacks: extra `fit` callbacks
        device: training device (default: the GPU of this process's local rank, else the CPU)
    """
    # every check comes before the first write: a bad option leaves no (empty) --out behind
    check_options(layers=layers, hidden=hidden, heads=heads, intermediate=intermediate, lr=lr,
                  batch_size=batch_size, grad_accum=grad_accum, weight_decay=weight_decay,
                  warmup=warmup, max_steps=max_steps, epochs=epochs, max_minutes=max_minutes,
                  eval_every=eval_every, checkpoint_every=checkpoint_every,
                  keep_checkpoints=keep_checkpoints, log_every=log_every)
    out = check_output(out_dir, "pretraining run")
    mix = parse_mask_mix(mask_mix) if mask_mix is not None else None
    initialised_here = not distributed.is_distributed() and distributed.init_distributed()
    plan = _phases(data_dir, phases, max_steps)
    manifest = plan[0].data.manifest
    note = mismatch_note(mix or manifest.masking.get("mix", DEFAULT_MIX)) if objective == "mlm" else None
    if note and distributed.is_main():
        warnings.warn(note, stacklevel=2)
    set_seed(seed)  # the same initial weights on every rank and every run
    longest = max(p.data.manifest.max_length for p in plan)
    net = build_pretraining_model(model, manifest, max_length=longest, layers=layers, hidden=hidden,
                                  heads=heads, intermediate=intermediate, objective=objective,
                                  pair_objective=pair_objective)
    saved_config = net.config  # what model/config.json says: the dropout fine-tuning will use
    if dropout is not None:
        net = _with_dropout(net, dropout)
    if distributed.is_main():
        out.mkdir(parents=True, exist_ok=True)
        mark_run(out)
        if not resume:
            shutil.rmtree(out / "checkpoints", ignore_errors=True)
    distributed.barrier()
    evaluator = None
    if eval_data is not None:
        held_out = PretrainDataset(eval_data)
        evaluator = lambda m: {f"val_{k}": v for k, v in evaluate_pretraining(  # noqa: E731
            m, held_out, seed=seed, objective=objective).items()}
    budget, log = TimeBudget(max_minutes), MetricsLog(out / "metrics.jsonl")
    use_bf16 = native_bf16(device) if bf16 is None else bf16
    configs = [TrainConfig(
        lr=lr, epochs=epochs, max_steps=phase.steps, batch_size=batch_size, grad_accum=grad_accum,
        weight_decay=weight_decay, warmup=warmup, optimizer=optimizer, bf16=use_bf16,
        eval_every=eval_every, checkpoint_dir=str(out / "checkpoints" / f"phase-{number}"),
        checkpoint_every=checkpoint_every, keep_checkpoints=keep_checkpoints, resume=resume,
        seed=seed, log_every=log_every, progress=progress) for number, phase in enumerate(plan, start=1)]
    for config, phase in zip(configs, plan, strict=True):  # all phases checked before any step
        recipe = asdict(phase.data.manifest) | {"objective": objective, "mask_mix": mix}
        data = fingerprint_data(recipe, eval_data and str(eval_data))
        check_run(config.checkpoint_dir, train_fingerprint(config, net, data), resume=resume,
                  allow_changes=force_resume)
    for number, (config, phase) in enumerate(zip(configs, plan, strict=True), start=1):
        log.start_phase(number, phase.offset)
        collator = MLMCollator.from_manifest(phase.data.manifest, seed=seed, objective=objective,
                                             mask_mix=mix)  # fit sets its epoch
        history = fit(net, phase.data, partial(pretraining_loss, objective=objective), config, collate=collator,
                      lengths=phase.data.lengths, eval_fn=evaluator,
                      callbacks=[budget, log, *callbacks], device=device)
        log.update(history.records)  # a phase finished before a resume runs no step
        if budget.expired:
            break
    model_dir = out / "model"
    if distributed.is_main():
        net.cpu()
        net.config = saved_config
        save_pretrained(net, phase.data.folder / manifest.tokenizer_dir, model_dir)
        if log.records():
            plot_history(log.records(), out / "pretraining.png", PLOT_KEYS, x="global_step")
    distributed.barrier()
    if initialised_here:
        torch.distributed.destroy_process_group()
    return model_dir
