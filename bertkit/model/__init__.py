"""The encoder, its heads, and checkpoint conversion."""

from .checkpoint import CheckpointError, load_model, save_model
from .encoder import Encoder
from .heads import HEADS
from .model import BertkitModel, ModelOutput, build

__all__ = ["BertkitModel", "CheckpointError", "Encoder", "HEADS", "ModelOutput", "build", "load_model", "save_model"]
