"""Students from teachers: a shallower (optionally narrower, or DistilBERT-family) copy of a model,
initialised from chosen teacher layers, as DistilBERT was from every other layer of BERT."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

from bertkit.families import family as family_spec
from bertkit.model import BertkitModel

Projection = Literal["pca"] | torch.Tensor | None


def default_layers(teacher_layers: int, student_layers: int) -> list[int]:
    """An even spread of `student_layers` teacher layers that keeps the first and the last:
    12 → 6 gives DistilBERT's 0, 2, 4, 7, 9, 11."""
    if not 1 <= student_layers <= teacher_layers:
        raise ValueError(f"a student of a {teacher_layers}-layer teacher needs 1..{teacher_layers} "
                         f"layers, got {student_layers}")
    if student_layers == 1:
        return [0]
    step = (teacher_layers - 1) / (student_layers - 1)
    return [int(i * step + 0.5) for i in range(student_layers)]  # round half up: 6.6 -> 7


def _layer_choice(teacher: BertkitModel, layers: int | Sequence[int] | None) -> list[int]:
    n = teacher.config.num_layers
    if layers is None:
        return default_layers(n, max(1, n // 2))
    if isinstance(layers, int):
        return default_layers(n, layers)
    chosen = [int(i) for i in layers]
    bad = [i for i in chosen if not 0 <= i < n]
    if not chosen or bad:
        raise ValueError(f"layers {chosen}: teacher layer indices must lie in 0..{n - 1}")
    if sorted(set(chosen)) != chosen:
        raise ValueError(f"layers {chosen}: give teacher layers in increasing order, each once")
    return chosen


def pca_projection(teacher: BertkitModel, width: int) -> torch.Tensor:
    """(teacher hidden, width) orthonormal columns: the top principal directions of the teacher's
    word embeddings, the subspace where its token representations vary most."""
    words = teacher.encoder.embeddings.word.weight.detach().float()
    centred = words - words.mean(0)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)  # v: (hidden, hidden), rows by variance
    return v[:width].T.contiguous()


def make_student(
    teacher: BertkitModel,
    layers: int | Sequence[int] | None = None,
    *,
    family: str | None = None,
    hidden: int | None = None,
    projection: Projection = None,
) -> BertkitModel:
    """A student model initialised from `teacher`: its embeddings, the chosen layers and its head.

    Args:
        teacher: any bertkit model (any head; the student gets the same head and labels).
        layers: how many layers (an even spread: 12 → 6 gives 0, 2, 4, 7, 9, 11) or which teacher
            layers, in order; default half of the teacher's.
        family: the student's family; "distilbert" for a BERT teacher drops the token-type
            embeddings (type 0 is folded into the position embeddings, so single-segment inputs
            give the same embeddings) and the pooler (a classification head's dense layer comes
            from the pooler; DistilBERT applies ReLU where BERT applied tanh). Default the teacher's.
        hidden: a narrower width than the teacher's; needs `projection`.
        projection: maps every hidden-size axis of the teacher's weights into the student's width:
            "pca" (top principal directions of the word embeddings) or a (teacher hidden, hidden)
            tensor. Layer norms do not commute with a projection: it is a starting point.
    """
    config, source = teacher.config, teacher.config.table
    allowed = (source.name, *source.students)  # the same, or DistilBERT (no token types, no pooler) for BERT
    family = family or config.family
    if family not in allowed:
        raise ValueError(f"a {family} student of a {config.family} teacher is not supported; "
                         f"choose family from {allowed}")
    target = family_spec(family)
    chosen = _layer_choice(teacher, layers)
    if config.share_layers and layers is not None and not isinstance(layers, int):
        raise ValueError("an ALBERT teacher shares one layer across the stack: give a number of layers")
    proj = _projection(teacher, hidden, projection)
    changes = dict(family=family, num_layers=len(chosen))
    if target is not source:  # the other family's defaults
        changes |= dict(type_vocab_size=config.type_vocab_size if target.token_types else 0,
                        classifier_dropout=target.default_classifier_dropout)
    if proj is not None:
        changes |= dict(hidden_size=proj.shape[1], embedding_size=proj.shape[1],
                        num_heads=_narrow_heads(config.num_heads, config.head_dim, proj.shape[1]))
    # a student family without the teacher's sentence-pair objective pre-trains with MLM alone
    drops_pair = teacher.head_name == "pretraining" and target.pair_head != source.pair_head
    head = "mlm" if drops_pair else teacher.head_name
    student = BertkitModel(config.replace(**changes), head=head, num_labels=teacher.num_labels)
    state = _student_state(teacher, student, chosen)
    if proj is not None:
        state = {k: _project(k, v, proj) for k, v in state.items()}
    student.load_state_dict(state, strict=True)
    return student.train(teacher.training)


def _projection(teacher: BertkitModel, hidden: int | None, projection: Projection) -> torch.Tensor | None:
    width = teacher.config.hidden_size
    if hidden is None or hidden == width:
        if projection is not None:
            raise ValueError("projection is for a narrower student: give hidden= too")
        return None
    if hidden > width:
        raise ValueError(f"hidden {hidden} is wider than the teacher's {width}: a student is narrower")
    if teacher.config.table.factorised_embeddings:
        raise ValueError("narrowing an ALBERT teacher is not supported (its embeddings are factorised)")
    if projection is None:
        raise ValueError(f"a student of width {hidden} cannot copy a {width}-wide teacher's weights "
                         "as they are: pass projection='pca' or a (teacher hidden, hidden) tensor")
    if isinstance(projection, str):
        if projection != "pca":
            raise ValueError(f"unknown projection {projection!r}; use 'pca' or a tensor")
        return pca_projection(teacher, hidden)
    if tuple(projection.shape) != (width, hidden):
        raise ValueError(f"projection has shape {tuple(projection.shape)}, expected ({width}, {hidden})")
    return projection.detach().float()


def _student_state(teacher: BertkitModel, student: BertkitModel, chosen: list[int]) -> dict[str, torch.Tensor]:
    """The student's state dict filled from the teacher's (layer i ← teacher layer chosen[i])."""
    source = {k: v.detach().clone() for k, v in teacher.state_dict().items()}
    out = {}
    for key in student.state_dict():
        name = key
        if key.startswith("encoder.layers."):
            _, _, index, rest = key.split(".", 3)
            name = f"encoder.layers.{0 if teacher.config.share_layers else chosen[int(index)]}.{rest}"
        elif key.startswith("classifier.dense.") and name not in source:
            name = key.replace("classifier.dense.", "encoder.pooler.dense.")  # BERT pooler -> pre_classifier
        if name not in source:
            raise ValueError(f"the teacher has no tensor for the student's {key}")
        out[key] = source[name]
    types = source.get("encoder.embeddings.token_type.weight")
    if types is not None and student.encoder.embeddings.token_type is None:
        # word + position + type[0] == word + (position + type[0]): exact for single segments
        out["encoder.embeddings.position.weight"] = out["encoder.embeddings.position.weight"] + types[0]
    return out


_IN_ONLY = ("feed_forward.intermediate.weight", "classifier.out.weight", "mlm.pair.classifier.weight")
_OUT_ONLY = ("feed_forward.output.weight",)
_UNTOUCHED = ("feed_forward.intermediate.bias", "classifier.out.bias", "mlm.pair.classifier.bias", "mlm.bias")


def _narrow_heads(heads: int, head_dim: int, width: int) -> int:
    if width % heads == 0:
        return heads
    if width % head_dim == 0:
        return width // head_dim
    raise ValueError(f"hidden {width} is divisible neither by the teacher's {heads} heads nor by "
                     f"its head size {head_dim}: choose a width that is")


def _project(key: str, value: torch.Tensor, proj: torch.Tensor) -> torch.Tensor:
    """Map the hidden-size axes of one teacher tensor into the student's width with `proj` (H, h)."""
    p = proj.to(value.dtype)
    if key.endswith("attention.qkv.weight"):  # (3H, H): project each of q, k, v on both sides
        return torch.cat([p.T @ w @ p for w in value.chunk(3)])
    if key.endswith("attention.qkv.bias"):
        return torch.cat([p.T @ b for b in value.chunk(3)])
    if key.startswith("encoder.embeddings.") and value.ndim == 2:  # (vocab or positions, H)
        return value @ p
    if key.endswith(_IN_ONLY):
        return value @ p
    if key.endswith(_OUT_ONLY):
        return p.T @ value
    if key.endswith(_UNTOUCHED):
        return value
    if key.endswith("norm.weight"):
        # the diagonal of p^T diag(gamma) p: each student scale is a weighted mean of the teacher's
        return (p * p).T @ value
    if value.ndim == 2:  # (H, H): dense layers in and out of the hidden space
        return p.T @ value @ p
    return p.T @ value  # biases and norm shifts of hidden-size outputs
