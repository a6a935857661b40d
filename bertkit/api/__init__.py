"""The ktrain-style workflow: `text.Transformer` → `get_learner` → `get_predictor` / `load_predictor`."""

from bertkit.api import text
from bertkit.api.learner import Learner, get_learner
from bertkit.api.predictor import Predictor, PredictorError, get_predictor, load_predictor

__all__ = ["Learner", "Predictor", "PredictorError", "get_learner", "get_predictor", "load_predictor", "text"]
