"""Distillation: student builders and the DistilBERT losses, trained with the one `fit` loop.

The package is also the ktrain-style entry point: `bertkit.distill(teacher, train_data, ...)` calls
`bertkit.distill.facade.distill` and returns a Learner.
"""

import sys
import types
from typing import Any

from bertkit.distill.losses import hidden_cosine_loss, soft_target_loss
from bertkit.distill.student import default_layers, make_student, pca_projection


class _CallablePackage(types.ModuleType):
    # `ktrain.distill(...)` and `import bertkit.distill.task` both work: a function of that name
    # would hide the package from `import bertkit.distill.x as y`
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from bertkit.distill.facade import distill

        return distill(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage

__all__ = ["default_layers", "hidden_cosine_loss", "make_student", "pca_projection", "soft_target_loss"]
