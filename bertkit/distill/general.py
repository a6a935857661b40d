"""General distillation (DistilBERT): a student learns a teacher's masked-LM on prepared pre-training
shards with the triple loss, through the pre-training run's data, masking, budget and `fit`.

Output folder as `pretrain`'s: `model/` (Hugging Face layout + tokenizer), `metrics.jsonl`,
`distillation.png` and `checkpoints/` for resuming.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from bertkit.config import EncoderConfig, Family
from bertkit.distill.losses import triple_loss
from bertkit.distill.student import make_student
from bertkit.hub import resolve
from bertkit.model import BertkitModel
from bertkit.model.checkpoint import load_state, read_weights
from bertkit.model.model import build
from bertkit.pretrain.masking import MLMCollator
from bertkit.pretrain.objectives import evaluate_pretraining
from bertkit.pretrain.run import MetricsLog, TimeBudget, save_pretrained
from bertkit.pretrain.shards import PretrainDataset
from bertkit.train import TrainConfig, distributed, fit, native_bf16, set_seed
from bertkit.train.checkpoint import check_run, fingerprint_data, train_fingerprint
from bertkit.train.history import plot_history

PLOT_KEYS = ("loss", "kl_loss", "mlm_loss", "cos_loss", "mlm_accuracy", "perplexity")


def load_mlm_teacher(teacher: str | Path | BertkitModel) -> BertkitModel:
    """The teacher with its masked-LM head, in eval mode; a checkpoint without one is an error
    (general distillation matches the teacher's vocabulary distributions)."""
    if isinstance(teacher, BertkitModel):
        if getattr(teacher, "mlm", None) is None:
            raise ValueError("the teacher model has no masked-LM head: load it with head='mlm'")
        return teacher.eval()
    folder = resolve(teacher)
    config = EncoderConfig.from_folder(folder)
    model = build(config, head="mlm")
    missing = load_state(model, read_weights(folder))
    if any(key.startswith("mlm.") for key in missing):
        raise ValueError(f"teacher {teacher} has no masked-LM head (a sentence-embedding or task "
                         "model?): general distillation needs a teacher pre-trained with MLM")
    return model.eval()


def _student(teacher: BertkitModel, layers: Sequence[int] | None, num_layers: int | None,
             family: str | None, freeze_positions: bool) -> BertkitModel:
    if layers is not None and num_layers is not None:
        raise ValueError("give layers (which teacher layers) or num_layers (how many), not both")
    student = make_student(teacher, layers if layers is not None else num_layers, family=family).train()
    if student.head_name != "mlm":  # the pretraining head's NSP/SOP has no part in distillation
        plain = BertkitModel(student.config, head="mlm")
        plain.load_state_dict(student.state_dict(), strict=False)
        student = plain.train()
    if freeze_positions:
        student.encoder.embeddings.position.weight.requires_grad_(False)
    return student


def distill_general(
    data: str,
    out: str,
    *,
    teacher: str,
    layers: list[int] | None = None,
    num_layers: int | None = None,
    family: Family | None = None,
    temperature: float = 2.0,
    alpha_ce: float = 5.0,
    alpha_mlm: float = 2.0,
    alpha_cos: float = 1.0,
    freeze_positions: bool = False,
    lr: float = 5e-4,
    batch_size: int = 32,
    grad_accum: int = 1,
    weight_decay: float = 0.01,
    warmup: float = 0.05,
    max_steps: int | None = None,
    epochs: int = 1,
    max_minutes: float | None = None,
    bf16: bool | None = None,
    eval_data: str | None = None,
    eval_every: int | None = None,
    checkpoint_every: int | None = 1000,
    keep_checkpoints: int = 2,
    resume: bool = True,
    force_resume: bool = False,
    seed: int = 42,
    log_every: int = 10,
    progress: bool = True,
    callbacks: Sequence[Any] = (),
    device: str | None = None,
) -> Path:
    """Distil a masked-LM teacher into a shallower student on a prepared corpus; return `out/model`.

    Args:
        data: a corpus folder made by `bertkit pretrain prepare` with the teacher's tokenizer.
        out: output folder: model/, metrics.jsonl, distillation.png, checkpoints/.
        teacher: a model folder or name with a masked-LM head.
        layers: which teacher layers the student copies, in order.
        num_layers: or how many (an even spread keeping the first and last); default half.
        family: the student's family ("distilbert" for a BERT teacher drops token types and pooler).
        temperature: softmax temperature of the soft targets.
        alpha_ce: weight of the soft-target KL loss (DistilBERT: 5.0).
        alpha_mlm: weight of the student's own masked-LM loss (DistilBERT: 2.0).
        alpha_cos: weight of the cosine loss between last hidden states (DistilBERT: 1.0).
        freeze_positions: keep the copied position embeddings fixed.
        lr: peak learning rate (AdamW, linear warmup and decay).
        batch_size: sequences per process and micro-batch.
        grad_accum: micro-batches per optimizer step.
        weight_decay: AdamW weight decay.
        warmup: < 1: fraction of the steps; >= 1: number of steps.
        max_steps: optimizer steps (sets the schedule's length); default `epochs` passes.
        epochs: passes over the corpus when max_steps is not given.
        max_minutes: stop cleanly and save after this long.
        bf16: bf16 autocast; default where the hardware computes bf16 natively.
        eval_data: a prepared held-out corpus for the student's MLM accuracy and perplexity.
        eval_every: steps between held-out evaluations (default: at the end).
        checkpoint_every: steps between checkpoints.
        keep_checkpoints: how many checkpoints to keep.
        resume: continue from the newest checkpoint in OUT/checkpoints.
        force_resume: resume even when the data or options differ from the checkpoints' run.
        seed: seed of masking, data order and dropout.
        log_every: steps between logged records.
        progress: show a progress bar.
    """
    initialised_here = not distributed.is_distributed() and distributed.init_distributed()
    folder, corpus = Path(out), PretrainDataset(data)
    manifest = corpus.manifest
    teacher_model = load_mlm_teacher(teacher)
    if manifest.vocab_size > teacher_model.config.vocab_size:
        raise ValueError(f"{data} was tokenised with {manifest.vocab_size} ids but the teacher has "
                         f"{teacher_model.config.vocab_size}: prepare it with the teacher's tokenizer")
    if distributed.is_main():
        folder.mkdir(parents=True, exist_ok=True)
        if not resume:
            shutil.rmtree(folder / "checkpoints", ignore_errors=True)
    distributed.barrier()
    set_seed(seed)
    student = _student(teacher_model, layers, num_layers, family, freeze_positions)
    loss_fn = triple_loss(teacher_model, temperature=temperature, alpha_ce=alpha_ce,
                          alpha_mlm=alpha_mlm, alpha_cos=alpha_cos)
    evaluator = None
    if eval_data is not None:
        held_out = PretrainDataset(eval_data)
        evaluator = lambda m: {f"val_{k}": v for k, v in evaluate_pretraining(m, held_out, seed=seed).items()}  # noqa: E731
    budget, log = TimeBudget(max_minutes), MetricsLog(folder / "metrics.jsonl")
    config = TrainConfig(
        lr=lr, epochs=epochs, max_steps=max_steps, batch_size=batch_size, grad_accum=grad_accum,
        weight_decay=weight_decay, warmup=warmup, bf16=native_bf16(device) if bf16 is None else bf16,
        eval_every=eval_every, checkpoint_dir=str(folder / "checkpoints"), checkpoint_every=checkpoint_every,
        keep_checkpoints=keep_checkpoints, resume=resume, seed=seed, log_every=log_every, progress=progress)
    fingerprint = train_fingerprint(config, student, fingerprint_data(asdict(manifest), eval_data and str(eval_data)))
    fingerprint["options"] |= {"teacher": str(teacher) if isinstance(teacher, str | Path) else "model",
                               "layers": layers, "num_layers": num_layers, "family": family,
                               "temperature": temperature, "alpha_ce": alpha_ce, "alpha_mlm": alpha_mlm,
                               "alpha_cos": alpha_cos, "freeze_positions": freeze_positions}
    check_run(config.checkpoint_dir, fingerprint, resume=resume, allow_changes=force_resume)
    history = fit(student, corpus, loss_fn, config, collate=MLMCollator.from_manifest(manifest, seed=seed),
                  lengths=corpus.lengths, eval_fn=evaluator, callbacks=[budget, log, *callbacks],
                  device=device)
    log.update(history.records)
    if distributed.is_main():
        save_pretrained(student.cpu(), corpus.folder / manifest.tokenizer_dir, folder / "model")
        if log.records():
            plot_history(log.records(), folder / "distillation.png", PLOT_KEYS, x="global_step")
    distributed.barrier()
    if initialised_here:
        torch.distributed.destroy_process_group()
    return folder / "model"
