"""Distillation: student builders and the DistilBERT losses, trained with the one `fit` loop."""

from bertkit.distill.losses import hidden_cosine_loss, soft_target_loss
from bertkit.distill.student import default_layers, make_student, pca_projection

__all__ = ["default_layers", "hidden_cosine_loss", "make_student", "pca_projection", "soft_target_loss"]
