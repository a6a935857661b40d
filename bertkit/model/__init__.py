"""The encoder, its heads, and checkpoint conversion."""

from .checkpoint import CheckpointError, save_model
from .encoder import Encoder
from .heads import HEADS, HeadSpec
from .model import BertkitModel, ModelOutput, build, load_model

__all__ = ["BertkitModel", "CheckpointError", "Encoder", "HEADS", "HeadSpec", "ModelOutput", "build", "load_model",
           "save_model"]
