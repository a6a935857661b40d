"""bertkit: the BERT family of text encoders (BERT, RoBERTa, DistilBERT, ALBERT), end to end."""

from . import (
    _torch_floor,  # noqa: F401  (first: a clear error on too old a torch)
    distill,  # callable: ktrain.distill(teacher, train_data) -> Learner
)
from ._version import __version__
from .api import get_learner, get_predictor, load_predictor, release_gpu_memory, text
from .config import EncoderConfig, UnsupportedModelError, preset
from .hub import ModelNotFoundError
from .model import BertkitModel, CheckpointError, ModelOutput, build, load_model, save_model
from .tokenizer import Tokenizer

__all__ = [
    "BertkitModel", "CheckpointError", "EncoderConfig", "ModelNotFoundError", "ModelOutput",
    "Tokenizer", "UnsupportedModelError", "build", "load_model", "preset", "save_model",
    "distill", "get_learner", "get_predictor", "load_predictor", "release_gpu_memory", "text", "__version__",
]
