"""The ktrain-style workflow: `text.Transformer` → `get_learner` → `get_predictor` / `load_predictor`."""

from bertkit.api import text
from bertkit.api.learner import Learner, get_learner
from bertkit.api.predictor import Predictor, PredictorError, get_predictor, load_predictor


def release_gpu_memory(device: int = 0) -> None:
    """ktrain's `release_gpu_memory`: free cached GPU memory (no-op without a GPU)."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        with torch.cuda.device(device):
            torch.cuda.empty_cache()


__all__ = ["release_gpu_memory", "Learner", "Predictor", "PredictorError", "get_learner", "get_predictor", "load_predictor", "text"]
