"""Child processes of the crash-safety tests: a tiny fine-tuning or pre-training run that can be
killed with SIGKILL at a chosen step (before an optimizer step, inside a checkpoint write, or
after a step), as a power cut or the OOM killer would."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import torch
from finetune_helpers import emotion_data
from safetensors.torch import save_model

from bertkit.api.learner import get_learner
from bertkit.api.text import Transformer
from bertkit.pretrain.run import pretrain
from bertkit.train import checkpoint, loop

TINY = dict(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64)
KILL_KINDS = ("mid_step", "in_checkpoint", "after_step")


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class _KillAfter:
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, state) -> None:
        if state.step == self.step:
            _die()


def arm(kind: str | None, step: int) -> list:
    """Patch this process to die at `step`; returns the callbacks to pass to the run."""
    if kind == "mid_step":  # gradients computed, optimizer not stepped
        original = loop._optimizer_step

        def step_then_die(run):
            if run.state.step + 1 == step:
                _die()
            original(run)

        loop._optimizer_step = step_then_die
    elif kind == "in_checkpoint":  # weights and optimizer written, state.json not yet
        original_save = checkpoint.save_json

        def save_or_die(path, obj):
            if Path(path).name == "state.json" and obj["step"] >= step:
                _die()
            original_save(path, obj)

        checkpoint.save_json = save_or_die
    return [_KillAfter(step)] if kind == "after_step" else []


def finetune_child(model_dir: str, folder: str, kind: str | None = None, step: int = 0) -> None:
    """18 steps (3 epochs of 6) with dropout, a checkpoint every 2 steps; final weights saved."""
    torch.set_num_threads(1)
    callbacks = arm(kind, step)
    preproc = Transformer(model_dir, maxlen=16, batch_size=8)
    texts, labels = emotion_data(48, seed=1)
    train = preproc.preprocess_train(texts, labels)
    learner = get_learner(preproc.get_classifier(seed=0), train, batch_size=8)
    learner.train(1e-3, 3, checkpoint_dir=str(Path(folder) / "ckpt"), checkpoint_every=2, resume=True,
                  progress=False, seed=1, callbacks=callbacks)
    save_model(learner.model, str(Path(folder) / "final.safetensors"))


def pretrain_child(data_dir: str, folder: str, kind: str | None = None, step: int = 0) -> None:
    """12 MLM+NSP steps with dropout, a checkpoint every 3 steps; final weights in folder/model."""
    torch.set_num_threads(1)
    callbacks = arm(kind, step)
    pretrain(data_dir, folder, model=TINY, max_steps=12, batch_size=8, lr=2e-3, checkpoint_every=3,
             log_every=1, progress=False, bf16=False, callbacks=callbacks)
