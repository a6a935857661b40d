"""The training loop (`fit`), its optimizers, schedules, checkpoints, LR finder and DDP helpers."""

from bertkit.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from bertkit.train.distributed import (
    all_reduce_mean,
    barrier,
    init_distributed,
    is_main,
    rank,
    world_size,
)
from bertkit.train.hardware import default_device, native_bf16, to_device
from bertkit.train.history import History
from bertkit.train.loop import fit
from bertkit.train.lr_find import LRFinderResult, lr_find
from bertkit.train.optim import Lamb, build_optimizer, param_groups
from bertkit.train.schedules import get_schedule
from bertkit.train.state import Callback, TrainConfig, TrainState, set_seed

__all__ = [
    "Callback",
    "History",
    "LRFinderResult",
    "Lamb",
    "TrainConfig",
    "TrainState",
    "all_reduce_mean",
    "barrier",
    "build_optimizer",
    "default_device",
    "fit",
    "get_schedule",
    "init_distributed",
    "is_main",
    "latest_checkpoint",
    "load_checkpoint",
    "lr_find",
    "native_bf16",
    "param_groups",
    "rank",
    "save_checkpoint",
    "set_seed",
    "to_device",
    "world_size",
]
