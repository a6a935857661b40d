"""A model as ktrain's list of layers: embeddings, each encoder layer, the pooler, the task head.

`freeze`/`unfreeze` switch `requires_grad` on whole layers; the optimizer only sees weights that
still require gradients, so frozen weights stay bit-identical through training.
"""

from __future__ import annotations

from torch import nn


def layer_list(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) in input-to-output order; the task head (if any) is last."""
    encoder = model.encoder
    layers: list[tuple[str, nn.Module]] = [("embeddings", encoder.embeddings)]
    if getattr(encoder, "project", None) is not None:
        layers.append(("embedding projection", encoder.project))
    layers += [(f"encoder layer {i}", layer) for i, layer in enumerate(encoder.layers)]
    if getattr(encoder, "pooler", None) is not None:
        layers.append(("pooler", encoder.pooler))
    seen = {id(m) for _, m in layers} | {id(encoder), id(model)}
    for name, child in model.named_children():
        if id(child) not in seen and any(True for _ in child.parameters()):
            layers.append((f"head: {name}", child))
    return layers


def set_trainable(model: nn.Module, first: int, last: int | None, trainable: bool) -> None:
    """Set `requires_grad` on the weights of layers[first:last]."""
    for _, module in layer_list(model)[first:last]:
        for p in module.parameters():
            p.requires_grad_(trainable)


def head_start(model: nn.Module) -> int:
    """Index of the first head layer (everything before it is the pre-trained encoder)."""
    layers = layer_list(model)
    heads = [i for i, (name, _) in enumerate(layers) if name.startswith("head:")]
    return heads[0] if heads else len(layers)


def describe(model: nn.Module, weight_decay: float | None = None) -> str:
    """One line per layer: index, name, trainable or frozen, parameter count (and weight decay)."""
    lines = []
    for i, (name, module) in enumerate(layer_list(model)):
        params = list(module.parameters())
        trainable = all(p.requires_grad for p in params)
        count = sum(p.numel() for p in params)
        wd = f"  weight decay {weight_decay}" if weight_decay is not None else ""
        lines.append(f"{i:>3} {name:<24} {'trainable' if trainable else 'frozen':<9} {count:>12,} params{wd}")
    return "\n".join(lines)
