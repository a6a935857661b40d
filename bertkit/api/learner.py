"""ktrain-style `Learner`: trains a classifier through `bertkit.train.fit`, then validates and plots.

Training policies, all over the one loop (`bertkit.train.loop.fit`), AdamW with weight decay 0.01:
- `fit_onecycle(lr, epochs)`: the 1cycle policy (rise from lr/25 over 30% of the steps, anneal to ~0).
- `autofit(lr, epochs=None)`: triangular cyclical LR, one cycle per epoch, early stopping on the
  validation loss and the best weights restored at the end; without `epochs` it runs until the
  validation loss stops improving for `early_stopping` (default 5) epochs, at most 30 epochs.
- `fit(lr, n_cycles)`: a constant learning rate for `n_cycles` epochs (ktrain's `fit` without
  `cycle_len`).
- `train(lr, epochs, schedule=...)`: any schedule and every loop option (the CLI uses this).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import nn

from bertkit.data.batching import pad_collate
from bertkit.model import BertkitModel
from bertkit.plotting import finish_figure, new_figure
from bertkit.tasks.classification import (
    ClassificationData,
    Evaluation,
    TaskSettings,
    balanced_class_weights,
    decode,
    evaluate,
    example_losses,
    make_loss_fn,
    metrics,
    predict_logits,
    probabilities,
)
from bertkit.train.checkpoint import check_run, train_fingerprint
from bertkit.train.loop import TrainConfig, fit
from bertkit.train.lr_find import LRFinderResult, lr_find
from bertkit.train.plots import History
from bertkit.train.schedules import ScheduleName

AUTOFIT_MAX_EPOCHS = 30
AUTOFIT_PATIENCE = 5

ClassWeights = str | Sequence[float] | dict[str, float] | None


class Learner:
    """A model and its data, with ktrain's training, LR-finder and inspection methods."""

    def __init__(
        self,
        model: BertkitModel,
        train_data: ClassificationData,
        val_data: ClassificationData | None = None,
        batch_size: int | None = None,
        *,
        eval_batch_size: int = 32,
        class_weights: ClassWeights = None,
    ) -> None:
        if not isinstance(train_data, ClassificationData) or train_data.targets is None:
            raise ValueError("train_data must come from Transformer.preprocess_train(texts, labels)")
        if val_data is not None and not isinstance(val_data, ClassificationData):
            raise ValueError("val_data must come from Transformer.preprocess_test(texts, labels)")
        self.settings = train_data.settings
        if getattr(model, "num_labels", None) != self.settings.num_outputs:
            raise ValueError(f"the model has {getattr(model, 'num_labels', None)} outputs but the task needs "
                             f"{self.settings.num_outputs}; build it with preproc.get_classifier()")  # fmt: skip
        self.model = model
        self.train_data, self.val_data = train_data, val_data
        self.batch_size = batch_size or train_data.batch_size
        self.eval_batch_size = eval_batch_size
        self.class_weights = self._class_weights(class_weights)
        self.loss_fn = make_loss_fn(self.settings.kind, self.class_weights)
        self.collate = functools.partial(pad_collate, pad_id=train_data.pad_id)
        self.history: History | None = None
        self.lr_finder: LRFinderResult | None = None

    def _class_weights(self, weights: ClassWeights) -> list[float] | None:
        if weights is None:
            return None
        if self.settings.kind != "multiclass":
            raise ValueError("class_weights apply to multiclass tasks only")
        labels = self.settings.labels
        if weights == "balanced":
            return balanced_class_weights(self.train_data.targets, len(labels))
        if isinstance(weights, dict):
            unknown = set(weights) - set(labels)
            if unknown:
                raise ValueError(f"class_weights name unknown classes {sorted(unknown)}; classes are {labels}")
            return [float(weights.get(name, 1.0)) for name in labels]
        if isinstance(weights, str) or len(weights) != len(labels):
            raise ValueError(f"class_weights must be 'balanced', a dict, or {len(labels)} numbers")
        return [float(w) for w in weights]

    # ------------------------------------------------------------------------- training
    def train(
        self, lr: float, epochs: int = 1, *, schedule: ScheduleName = "linear",
        warmup: float = 0.1, callbacks: Sequence[Any] = (), **options: Any,
    ) -> History:  # fmt: skip
        """Run `bertkit.train.fit`; `options` are any other `TrainConfig` fields (eval_every,
        early_stopping, restore_best, checkpoint_dir, resume, max_steps, seed, bf16, grad_accum, ...).
        ktrain's `checkpoint_folder=` and `verbose=` are accepted as checkpoint_dir and progress.
        Resuming checks that the checkpoints were made with the same data, model and options;
        `force_resume=True` continues despite changed data or options."""
        if not lr > 0:
            raise ValueError(f"the learning rate must be positive, got {lr}")
        if "checkpoint_folder" in options:
            options["checkpoint_dir"] = options.pop("checkpoint_folder")
        if "verbose" in options:
            options["progress"] = bool(options.pop("verbose"))
        labelled = self._has_labelled_val()
        if options.get("early_stopping") and not labelled:
            raise ValueError("early stopping needs labelled val_data: pass it to get_learner")
        options.setdefault("monitor", "val_loss")
        force_resume = bool(options.pop("force_resume", False))
        config = TrainConfig(lr=lr, epochs=epochs, batch_size=self.batch_size, schedule=schedule,
                             warmup=warmup, **options)  # fmt: skip
        if config.checkpoint_dir:
            data = self.train_data.fingerprint() if hasattr(self.train_data, "fingerprint") else ""
            fingerprint = train_fingerprint(config, self.model, data)
            check_run(config.checkpoint_dir, fingerprint, resume=config.resume, allow_changes=force_resume)
        eval_fn = self._eval_fn if labelled else None
        self.history = fit(self.model, self.train_data, self.loss_fn, config, collate=self.collate,
                           lengths=self.train_data.lengths, eval_fn=eval_fn, callbacks=callbacks)  # fmt: skip
        return self.history

    def fit_onecycle(self, lr: float, epochs: int, **options: Any) -> History:
        """Train with the 1cycle policy peaking at `lr`."""
        return self.train(lr, epochs, schedule="onecycle", **options)

    def autofit(self, lr: float, epochs: int | None = None, early_stopping: int | None = None,
                **options: Any) -> History:  # fmt: skip
        """Triangular policy (one cycle per epoch), early stopping, best weights restored."""
        if epochs is None:
            if not self._has_labelled_val():
                raise ValueError("autofit without epochs stops on the validation loss: pass val_data to get_learner")
            early_stopping = early_stopping or AUTOFIT_PATIENCE
        return self.train(lr, epochs or AUTOFIT_MAX_EPOCHS, schedule="triangular", early_stopping=early_stopping,
                          restore_best=self._has_labelled_val(), **options)  # fmt: skip

    def _has_labelled_val(self) -> bool:
        return self.val_data is not None and self.val_data.targets is not None

    def fit(self, lr: float, n_cycles: int, **options: Any) -> History:
        """A constant learning rate `lr` for `n_cycles` epochs."""
        return self.train(lr, n_cycles, schedule="constant", warmup=options.pop("warmup", 0), **options)

    # ------------------------------------------------------------------------- LR finder
    def lr_find(self, start_lr: float = 1e-7, end_lr: float = 10.0, max_epochs: int | None = None,
                num_steps: int = 100, stop_factor: float = 4.0, show_plot: bool = False,
                suggest: bool = False) -> LRFinderResult:  # fmt: skip
        """LR range test; the weights are left unchanged. With `max_epochs` the LR ramp spans that
        many passes over the training data (ktrain's behaviour), else `num_steps` batches."""
        if max_epochs is not None:
            num_steps = max_epochs * math.ceil(len(self.train_data) / self.batch_size)
        self.lr_finder = lr_find(self.model, self.train_data, self.loss_fn, collate=self.collate,
                                 lengths=self.train_data.lengths, batch_size=self.batch_size,
                                 start_lr=start_lr, end_lr=end_lr, num_steps=num_steps,
                                 max_epochs=max_epochs, stop_factor=stop_factor)  # fmt: skip
        if suggest or show_plot:
            print(f"lr_find: {len(self.lr_finder.lrs)} steps; suggested learning rate "
                  f"(steepest descent of the loss): {self.lr_estimate()}")  # fmt: skip
        if show_plot:
            self.lr_plot(show=True)
        return self.lr_finder

    def lr_estimate(self) -> float | None:
        """The suggested learning rate of the last `lr_find` (steepest loss descent)."""
        if self.lr_finder is None:
            raise ValueError("run learner.lr_find() first")
        return self.lr_finder.suggestion

    def lr_plot(self, path: str | None = None, show: bool | None = None) -> Any:
        """Loss against learning rate from the last `lr_find`; saved as PNG at `path`, shown when
        `show` (default: shown when no path is given)."""
        if self.lr_finder is None:
            raise ValueError("run learner.lr_find() first")
        return self.lr_finder.plot(path, show=path is None if show is None else show)

    def plot(self, path: str | None = None, show: bool | None = None) -> Any:
        """Training loss and validation loss against the step (PNG at `path`, or shown)."""
        if self.history is None:
            raise ValueError("nothing trained yet: call fit_onecycle, autofit or fit first")
        show = path is None if show is None else show
        fig, ax = new_figure(show)
        for key, label in (("loss", "training loss"), ("val_loss", "validation loss")):
            steps, values = self.history.series(key)
            if steps:
                ax.plot(steps, values, marker="o" if len(steps) < 30 else None, label=label)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.legend()
        return finish_figure(fig, path, show)

    # ------------------------------------------------------------------------- inspection
    def _logits(self, data: ClassificationData) -> np.ndarray:
        return predict_logits(self.model, data.features, data.example_ids, data.num_examples,
                              pad_id=data.pad_id, batch_size=self.eval_batch_size)  # fmt: skip

    def _eval_fn(self, model: nn.Module) -> dict[str, float]:
        return metrics(self._logits(self.val_data), self.val_data.target_array(), self.settings)

    def _val(self, val_data: ClassificationData | None) -> ClassificationData:
        data = val_data if val_data is not None else self.val_data
        if data is None or data.targets is None:
            raise ValueError("no labelled validation data: pass val_data (from preprocess_test(texts, labels))")
        return data

    def validate(self, val_data: ClassificationData | None = None, class_names: Sequence[str] | None = None,
                 print_report: bool = True) -> Evaluation:  # fmt: skip
        """Classification report and confusion matrix on the validation data (printed and returned)."""
        data = self._val(val_data)
        result = evaluate(self._logits(data), data.target_array(), self.settings, class_names)
        if print_report:
            print(result)
        return result

    def view_top_losses(self, n: int = 4, preproc: Any = None,
                        val_data: ClassificationData | None = None) -> list[tuple[int, float, Any, Any]]:  # fmt: skip
        """Print and return the `n` validation examples with the highest loss:
        (index, loss, true label, predicted label). `preproc` is accepted for ktrain compatibility."""
        data = self._val(val_data)
        logits, targets = self._logits(data), data.target_array()
        losses = example_losses(logits, targets, self.settings.kind)
        predicted = decode(probabilities(logits, self.settings.kind), self.settings)
        truth = _target_names(targets, self.settings)
        top = [(int(i), float(losses[i]), truth[i], predicted[i]) for i in np.argsort(-losses)[:n]]
        for index, loss, true, pred in top:
            text = data.texts[index] if data.pairs is None else f"{data.texts[index]} [SEP] {data.pairs[index]}"
            print(f"----------\nid:{index} | loss:{loss:.4f} | true:{true} | pred:{pred}\n\n{text}")
        return top


def _target_names(targets: np.ndarray, settings: TaskSettings) -> list[Any]:
    """Targets as users wrote them: class names, label-name lists, or numbers."""
    if settings.kind == "regression":
        return [float(v) for v in targets]
    if settings.kind == "multiclass":
        return [settings.labels[int(i)] for i in targets]
    return [[n for n, on in zip(settings.labels, row, strict=True) if on] for row in targets]


def get_learner(
    model: BertkitModel,
    train_data: ClassificationData,
    val_data: ClassificationData | None = None,
    batch_size: int | None = None,
    *,
    eval_batch_size: int = 32,
    class_weights: ClassWeights = None,
) -> Learner:
    """ktrain's `get_learner`: `batch_size` defaults to the one given to `text.Transformer`;
    `class_weights` ("balanced", a list, or a dict by class name) re-weights the cross-entropy."""
    return Learner(model, train_data, val_data, batch_size, eval_batch_size=eval_batch_size,
                   class_weights=class_weights)  # fmt: skip
