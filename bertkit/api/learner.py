"""ktrain-style `Learner`: trains any task's model through `bertkit.train.fit`, then validates and plots.

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

from bertkit.api import layers
from bertkit.data.batching import pad_collate
from bertkit.model import BertkitModel, load_model
from bertkit.model.encoder import packed_encoding
from bertkit.tasks.base import TaskData
from bertkit.tasks.inference import forward_features
from bertkit.tasks.report import Evaluation
from bertkit.train.checkpoint import check_run, fingerprint_task_data, train_fingerprint
from bertkit.train.history import History, plot_history
from bertkit.train.loop import fit
from bertkit.train.lr_find import LRFinderResult, lr_find
from bertkit.train.schedules import ScheduleName
from bertkit.train.state import TrainConfig

AUTOFIT_MAX_EPOCHS = 30
DEFAULT_WEIGHT_DECAY = 0.01
AUTOFIT_PATIENCE = 5

ClassWeights = str | Sequence[float] | dict[str, float] | None


class Learner:
    """A model and its data, with ktrain's training, LR-finder and inspection methods, for any task.

    `loss_options` go to the task's loss (classification: `class_weights`).
    """

    def __init__(
        self,
        model: BertkitModel,
        train_data: TaskData,
        val_data: TaskData | None = None,
        batch_size: int | None = None,
        *,
        eval_batch_size: int = 32,
        **loss_options: Any,
    ) -> None:
        if not isinstance(train_data, TaskData) or not train_data.labelled:
            raise ValueError("train_data must come from a preprocessor's preprocess_train(examples, labels)")
        if val_data is not None and not isinstance(val_data, TaskData):
            raise ValueError("val_data must come from a preprocessor's preprocess_test(examples, labels)")
        self.task = train_data.task
        if val_data is not None and val_data.task.name != self.task.name:
            raise ValueError(f"val_data is for the {val_data.task.name!r} task, train_data for {self.task.name!r}")
        expected = self.task.num_outputs
        if expected is not None and getattr(model, "num_labels", None) != expected:
            raise ValueError(f"the model has {getattr(model, 'num_labels', None)} outputs but the task needs "
                             f"{expected}; build it with the preprocessor's get_classifier()/get_model()")
        self.model = model
        self.train_data, self.val_data = train_data, val_data
        self.batch_size = batch_size or train_data.batch_size
        self.eval_batch_size = eval_batch_size
        self.loss_fn = self.task.loss_fn(train_data, **loss_options)
        self.collate = functools.partial(pad_collate, pad_id=train_data.pad_id)
        self.history: History | None = None
        self.lr_finder: LRFinderResult | None = None
        self.weight_decay = DEFAULT_WEIGHT_DECAY

    # ------------------------------------------------------------------------- training
    def train(
        self, lr: float, epochs: int = 1, *, schedule: ScheduleName = "linear",
        warmup: float = 0.1, callbacks: Sequence[Any] = (), **options: Any,
    ) -> History:
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
        options.setdefault("weight_decay", self.weight_decay)
        options.setdefault("group_by_length", getattr(self.task, "group_by_length", True))
        force_resume = bool(options.pop("force_resume", False))
        config = TrainConfig(lr=lr, epochs=epochs, batch_size=self.batch_size, schedule=schedule,
                             warmup=warmup, **options)
        if config.checkpoint_dir:
            fingerprint = train_fingerprint(config, self.model, fingerprint_task_data(self.train_data))
            check_run(config.checkpoint_dir, fingerprint, resume=config.resume, allow_changes=force_resume)
        eval_fn = self._eval_fn if labelled else None
        # random batches (group_by_length=False) run packed: no compute on their padding
        with packed_encoding(self.model, not config.group_by_length):
            self.history = fit(self.model, self.train_data, self.loss_fn, config, collate=self.collate,
                               lengths=self.train_data.lengths, eval_fn=eval_fn, callbacks=callbacks)
        return self.history

    def fit_onecycle(self, lr: float, epochs: int, **options: Any) -> History:
        """Train with the 1cycle policy peaking at `lr`."""
        return self.train(lr, epochs, schedule="onecycle", **options)

    def autofit(self, lr: float, epochs: int | None = None, early_stopping: int | None = None,
                **options: Any) -> History:
        """Triangular policy (one cycle per epoch), early stopping, best weights restored."""
        if epochs is None:
            if not self._has_labelled_val():
                raise ValueError("autofit without epochs stops on the validation loss: pass val_data to get_learner")
            early_stopping = early_stopping or AUTOFIT_PATIENCE
        return self.train(lr, epochs or AUTOFIT_MAX_EPOCHS, schedule="triangular", early_stopping=early_stopping,
                          restore_best=self._has_labelled_val(), **options)

    def _has_labelled_val(self) -> bool:
        return self.val_data is not None and self.val_data.labelled

    def fit(self, lr: float, n_cycles: int, **options: Any) -> History:
        """A constant learning rate `lr` for `n_cycles` epochs."""
        return self.train(lr, n_cycles, schedule="constant", warmup=options.pop("warmup", 0), **options)

    # ------------------------------------------------------------------------- LR finder
    def lr_find(self, start_lr: float = 1e-7, end_lr: float = 10.0, max_epochs: int | None = None,
                num_steps: int = 100, stop_factor: float = 4.0, show_plot: bool = False,
                suggest: bool = False) -> LRFinderResult:
        """LR range test; the weights are left unchanged. With `max_epochs` the LR ramp spans that
        many passes over the training data (ktrain's behaviour), else `num_steps` batches."""
        if max_epochs is not None:
            num_steps = max_epochs * math.ceil(len(self.train_data) / self.batch_size)
        self.lr_finder = lr_find(self.model, self.train_data, self.loss_fn, collate=self.collate,
                                 lengths=self.train_data.lengths, batch_size=self.batch_size,
                                 start_lr=start_lr, end_lr=end_lr, num_steps=num_steps,
                                 max_epochs=max_epochs, stop_factor=stop_factor)
        if suggest or show_plot:
            print(f"lr_find: {len(self.lr_finder.lrs)} steps; suggested learning rate "
                  f"(steepest descent of the loss): {self.lr_estimate()}")
        if show_plot:
            self.lr_plot(show=True)
        return self.lr_finder

    def lr_estimate(self) -> float | None:
        """The suggested learning rate of the last `lr_find` (steepest loss descent)."""
        if self.lr_finder is None:
            raise ValueError("run learner.lr_find() first")
        return self.lr_finder.suggestion

    def lr_plot(self, n_skip_beginning: int = 10, n_skip_end: int = 5, suggest: bool = False,
                return_fig: bool = False, *, path: str | None = None, show: bool | None = None) -> Any:
        """ktrain's `lr_plot`: loss against learning rate from the last `lr_find`, without the first
        `n_skip_beginning` and last `n_skip_end` points; `suggest` marks and prints the suggested
        rate. Saved as PNG at `path`; shown when `show` (default: when no path is given). Returns
        the figure with `return_fig`."""
        if self.lr_finder is None:
            raise ValueError("run learner.lr_find() first")
        if suggest:
            print(f"suggested learning rate (steepest descent of the loss): {self.lr_finder.suggestion}")
        fig = self.lr_finder.plot(path, show=path is None if show is None else show, skip_start=n_skip_beginning,
                                  skip_end=n_skip_end, mark=suggest)
        return fig if return_fig else None

    def plot(self, path: str | None = None, show: bool | None = None) -> Any:
        """Training loss and validation loss against the step (PNG at `path`, or shown)."""
        if self.history is None:
            raise ValueError("nothing trained yet: call fit_onecycle, autofit or fit first")
        return plot_history(self.history.records, path, ["loss"], show=path is None if show is None else show)

    # ------------------------------------------------------------------------- inspection
    def outputs(self, data: TaskData) -> list[np.ndarray]:
        """The model's logits of every feature of `data` (see `forward_features`)."""
        return forward_features(self.model, data.features, pad_id=data.pad_id, batch_size=self.eval_batch_size)

    def _eval_fn(self, model: nn.Module) -> dict[str, float]:
        return self.task.metrics(self.outputs(self.val_data), self.val_data)

    def _val(self, val_data: TaskData | None) -> TaskData:
        data = val_data if val_data is not None else self.val_data
        if data is None or not data.labelled:
            raise ValueError("no labelled validation data: pass val_data (from preprocess_test(examples, labels))")
        return data

    def report(self, val_data: TaskData | None = None, class_names: Sequence[str] | None = None,
               print_report: bool = True) -> Evaluation:
        """The task's full report on the validation data (classification: scikit-learn's report,
        the confusion matrix and the metrics), printed and returned."""
        data = self._val(val_data)
        result = self.task.evaluate(self.outputs(data), data, class_names)
        if print_report:
            print(result)
        return result

    def validate(self, val_data: TaskData | None = None, print_report: bool = True,
                 class_names: Sequence[str] | None = None) -> Any:
        """ktrain's `validate`: prints the report and returns what ktrain returns — the confusion
        matrix as a numpy array for classification (`report()` gives the whole evaluation)."""
        return self.report(val_data, class_names or None, print_report).ktrain_value()

    def evaluate(self, test_data: TaskData | None = None, print_report: bool = True,
                 class_names: Sequence[str] | None = None) -> Any:
        """ktrain's `evaluate`: `validate` on `test_data` (default: the validation data)."""
        return self.validate(test_data, print_report, class_names)

    def top_losses(self, n: int = 4, val_data: TaskData | None = None,
                   preproc: Any = None) -> list[tuple[int, float, Any, Any]]:
        """The `n` validation examples with the highest loss, highest first: ktrain's
        (index, loss, true label, predicted label) tuples. `preproc` is accepted for compatibility."""
        data = self._val(val_data)
        if not hasattr(self.task, "example_losses"):
            raise ValueError(f"the {self.task.name!r} task has no per-example loss to rank")
        outputs = self.outputs(data)
        losses = self.task.example_losses(outputs, data)
        predicted = self.task.decode(outputs, data)
        truth = self.task.target_names(data)
        return [(int(i), float(losses[i]), truth[i], predicted[i]) for i in np.argsort(-losses, kind="stable")[:n]]

    def view_top_losses(self, n: int = 4, preproc: Any = None,
                        val_data: TaskData | None = None) -> list[tuple[int, float, Any, Any]]:
        """Print (and return) `top_losses(n)` with each example's text."""
        data = self._val(val_data)
        top = self.top_losses(n, data)
        for index, loss, true, pred in top:
            example = data.examples[index]
            text = f"{example[0]} [SEP] {example[1]}" if isinstance(example, tuple) else example
            print(f"----------\nid:{index} | loss:{loss:.4f} | true:{true} | pred:{pred}\n\n{text}")
        return top

    # ------------------------------------------------------------------------- layers and weights
    def freeze(self, freeze_range: int | None = None) -> None:
        """Freeze the whole pre-trained encoder (None) or its first `freeze_range` layers (see
        `print_layers`); frozen weights get no gradient and stay unchanged."""
        end = layers.head_start(self.model) if freeze_range is None else int(freeze_range)
        layers.set_trainable(self.model, 0, end, False)

    def unfreeze(self, exclude_range: int | None = None) -> None:
        """Make every layer trainable again, except the first `exclude_range` layers."""
        layers.set_trainable(self.model, int(exclude_range or 0), None, True)
        if exclude_range:
            layers.set_trainable(self.model, 0, int(exclude_range), False)

    def print_layers(self, show_wd: bool = False) -> None:
        """Print the model's layers with their index, trainable state and size."""
        print(layers.describe(self.model, self.weight_decay if show_wd else None))

    def set_weight_decay(self, wd: float = DEFAULT_WEIGHT_DECAY) -> None:
        """The decoupled weight decay of the next training runs (biases and norms never decay)."""
        if wd < 0:
            raise ValueError(f"weight decay must be >= 0, got {wd}")
        self.weight_decay = float(wd)

    def get_weight_decay(self) -> float:
        return self.weight_decay

    def save_model(self, fpath: str) -> None:
        """Write the model (Hugging Face layout, atomically) to the folder `fpath`."""
        self.model.save(fpath)

    def load_model(self, fpath: str, **kwargs: Any) -> None:
        """Load weights saved by `save_model` into this learner's model (same architecture)."""
        loaded = load_model(fpath, head=self.model.head_name, num_labels=self.model.num_labels)
        self.model.load_state_dict(loaded.state_dict())


def get_learner(
    model: BertkitModel,
    train_data: TaskData,
    val_data: TaskData | None = None,
    batch_size: int | None = None,
    *,
    eval_batch_size: int = 32,
    **loss_options: Any,
) -> Learner:
    """ktrain's `get_learner`: `batch_size` defaults to the preprocessor's; classification takes
    `class_weights` ("balanced", a list, or a dict by class name) to re-weight the cross-entropy."""
    return Learner(model, train_data, val_data, batch_size, eval_batch_size=eval_batch_size, **loss_options)
