"""The one Transformer encoder behind BERT, RoBERTa, DistilBERT and ALBERT."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..config import EncoderConfig
from .dropout import Dropout, attention


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")


ACTIVATIONS = {
    "gelu": F.gelu,
    "gelu_new": gelu_tanh,
    "gelu_pytorch_tanh": gelu_tanh,
    "relu": F.relu,
    "silu": F.silu,
    "tanh": torch.tanh,
}


def activation(name: str):
    if name not in ACTIVATIONS:
        raise ValueError(f"Unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}.")
    return ACTIVATIONS[name]


class Embeddings(nn.Module):
    """Word + position (+ token type) embeddings, then layer norm and dropout."""

    def __init__(self, vocab_size: int, size: int, max_positions: int, type_vocab_size: int,
                 pad_token_id: int, position_offset: int, eps: float, dropout: float) -> None:
        super().__init__()
        self.word = nn.Embedding(vocab_size, size, padding_idx=pad_token_id)
        self.position = nn.Embedding(max_positions, size)
        self.token_type = nn.Embedding(type_vocab_size, size) if type_vocab_size else None
        self.norm = nn.LayerNorm(size, eps=eps)
        self.dropout = Dropout(dropout)
        self.pad_token_id = pad_token_id
        self.position_offset = position_offset

    def positions(self, input_ids: torch.Tensor) -> torch.Tensor:
        if self.position_offset:
            # RoBERTa: padding keeps the padding index; real tokens count up from offset.
            real = (input_ids != self.pad_token_id).long()
            return torch.cumsum(real, dim=1) * real + (self.position_offset - 1) * real + self.pad_token_id * (1 - real)
        return torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None) -> torch.Tensor:
        if input_ids.shape[1] > self.position.num_embeddings - self.position_offset:
            raise ValueError(
                f"Sequence of {input_ids.shape[1]} tokens is longer than the model's "
                f"{self.position.num_embeddings - self.position_offset} positions; truncate it (maxlen)."
            )
        x = self.word(input_ids) + self.position(self.positions(input_ids))
        if self.token_type is not None:
            if token_type_ids is None:
                token_type_ids = torch.zeros_like(input_ids)
            x = x + self.token_type(token_type_ids)
        return self.dropout(self.norm(x))


class SelfAttention(nn.Module):
    """Multi-head self-attention with one fused query/key/value projection and SDPA."""

    def __init__(self, hidden_size: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.output = nn.Linear(hidden_size, hidden_size)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, first_only: bool = False) -> torch.Tensor:
        """(batch, seq, hidden) -> (batch, seq, hidden); with `first_only`, (batch, 1, hidden): the
        first position's output alone (its query against every key)."""
        batch, seq, hidden = x.shape
        if first_only:
            q, k, v = self._first_qkv(x[:, 0], x)
            q, k, v = q.unsqueeze(2), k.transpose(1, 2), v.transpose(1, 2)  # (batch, heads, 1 | seq, dim)
        else:
            # (batch, seq, 3, heads, head_dim) -> three (batch, heads, seq, head_dim)
            q, k, v = self.qkv(x).view(batch, seq, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        out = attention(q, k, v, mask, self.dropout if self.training else 0.0)
        return self.output(out.transpose(1, 2).reshape(batch, q.shape[2], hidden))

    def _first_qkv(self, first: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Queries of the first positions only (`first`: (n, hidden) -> (n, heads, dim)), keys and
        values of every position (x: (..., hidden) -> two (..., heads, dim)): the query third of the
        fused projection is computed for the rows that need it."""
        hidden = x.shape[-1]
        weight, bias = self.qkv.weight, self.qkv.bias
        if isinstance(weight, torch.Tensor):
            q, kv = F.linear(first, weight[:hidden], bias[:hidden]), F.linear(x, weight[hidden:], bias[hidden:])
        else:  # a quantised projection (int8) has no weight rows to slice: project, then slice
            q, kv = self.qkv(first)[..., :hidden], self.qkv(x)[..., hidden:]
        k, v = kv.unflatten(-1, (2, self.num_heads, -1)).unbind(-3)
        return q.unflatten(-1, (self.num_heads, -1)), k, v

    def forward_packed(self, x: torch.Tensor, lengths: list[int], firsts: torch.Tensor | None = None) -> torch.Tensor:
        """x: (tokens, hidden), the real tokens of several sequences back to back.

        The projections see only real tokens; attention runs once per sequence, on its own
        length, so no query or key is ever padding and SDPA needs no mask. With `firsts` (the
        index of each sequence's first token), only those positions' outputs: (sequences, hidden).
        """
        tokens, hidden = x.shape
        dropout = self.dropout if self.training else 0.0
        outs, start = [], 0
        if firsts is not None:
            q, k, v = self._first_qkv(x[firsts], x)  # (sequences, heads, dim), (tokens, heads, dim) x 2
            for i, n in enumerate(lengths):
                # (1, heads, 1 | n, dim): one query against the sequence's keys
                one = attention(q[i, :, None, None].transpose(0, 1), k[start : start + n].transpose(0, 1).unsqueeze(0),
                                v[start : start + n].transpose(0, 1).unsqueeze(0), None, dropout)
                outs.append(one.reshape(1, hidden))
                start += n
            return self.output(torch.cat(outs))
        qkv = self.qkv(x).view(tokens, 3, self.num_heads, -1)  # (tokens, 3, heads, dim)
        for n in lengths:
            # (1, heads, n, dim) views: 4-D inputs let SDPA pick its fused (flash) kernel on CPU too
            q, k, v = qkv[start : start + n].permute(1, 2, 0, 3).unsqueeze(1).unbind(0)
            outs.append(attention(q, k, v, None, dropout)[0].transpose(0, 1))
            start += n
        return self.output(torch.cat(outs).reshape(tokens, hidden))


class FeedForward(nn.Module):
    def __init__(self, hidden_size: int, intermediate_size: int, act: str) -> None:
        super().__init__()
        self.intermediate = nn.Linear(hidden_size, intermediate_size)
        self.output = nn.Linear(intermediate_size, hidden_size)
        self.act = activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.act(self.intermediate(x)))


class Layer(nn.Module):
    """Post-layer-norm Transformer layer, as in all four families."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.attention = SelfAttention(config.hidden_size, config.num_heads, config.attention_dropout)
        self.attention_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.feed_forward = FeedForward(config.hidden_size, config.intermediate_size, config.activation)
        self.output_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, first_only: bool = False) -> torch.Tensor:
        """`first_only`: the first position's output alone, (batch, 1, hidden)."""
        attended = self.attention(x, mask, first_only)
        x = self.attention_norm((x[:, :1] if first_only else x) + self.dropout(attended))
        return self.output_norm(x + self.dropout(self.feed_forward(x)))

    def forward_packed(self, x: torch.Tensor, lengths: list[int], firsts: torch.Tensor | None = None) -> torch.Tensor:
        """The same layer on packed real tokens (tokens, hidden); see `SelfAttention.forward_packed`."""
        attended = self.attention.forward_packed(x, lengths, firsts)
        x = self.attention_norm((x if firsts is None else x[firsts]) + self.dropout(attended))
        return self.output_norm(x + self.dropout(self.feed_forward(x)))


class Pooler(nn.Module):
    """tanh(dense(first token)): the sentence vector BERT's pair and classification heads read."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)

    def forward(self, hidden: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        """`index` (batch,): read that position instead of the first (a causal encoder's last token)."""
        first = hidden[:, 0] if index is None else hidden[torch.arange(hidden.shape[0], device=hidden.device), index]
        return torch.tanh(self.dense(first))


def attention_bias(attention_mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """(batch, seq) 1/0 mask -> (batch, 1, 1, seq) additive bias for SDPA; None when nothing is padded."""
    if attention_mask is None:
        return None
    # An exported graph (ONNX) must keep the mask for every batch it will see; eager runs skip it
    # when nothing is padded, which lets SDPA pick its fastest kernel.
    if not torch.compiler.is_exporting() and bool(attention_mask.all()):
        return None
    bias = torch.zeros(attention_mask.shape, dtype=dtype, device=attention_mask.device)
    bias.masked_fill_(attention_mask == 0, torch.finfo(dtype).min)
    return bias[:, None, None, :]


def causal_bias(attention_mask: torch.Tensor | None, length: int, dtype: torch.dtype,
                device: torch.device) -> torch.Tensor:
    """The padding bias (or None) combined with a (seq, seq) bias that hides every later position."""
    later = torch.ones(length, length, dtype=torch.bool, device=device).triu(1)
    bias = torch.zeros(length, length, dtype=dtype, device=device).masked_fill_(later, torch.finfo(dtype).min)
    padding = attention_bias(attention_mask, dtype)
    # minimum, not sum: two finfo.min would overflow to -inf
    return bias[None, None] if padding is None else torch.minimum(padding, bias)


def last_positions(attention_mask: torch.Tensor | None, hidden: torch.Tensor) -> torch.Tensor:
    """(batch,) index of each row's last real token: the one position a causal encoder lets see all."""
    if attention_mask is None:
        return torch.full((hidden.shape[0],), hidden.shape[1] - 1, device=hidden.device)
    return (attention_mask.sum(dim=1) - 1).clamp(min=0).long()


def share_blocks(layers: nn.ModuleList, blocks: str) -> None:
    """ALBERT's partial sharing: every layer reuses the first layer's attention or feed-forward block
    (with its layer norm); the other block stays per layer."""
    names = {"attention": ("attention", "attention_norm"), "feed_forward": ("feed_forward", "output_norm")}[blocks]
    for layer in layers[1:]:
        for name in names:
            setattr(layer, name, getattr(layers[0], name))


class Encoder(nn.Module):
    """Embeddings (+ ALBERT's E->H projection), a stack of layers (shared for ALBERT), optional pooler."""

    def __init__(self, config: EncoderConfig, pooler: bool = True) -> None:
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(
            config.vocab_size, config.embedding_size, config.max_positions, config.type_vocab_size,
            config.pad_token_id, config.position_offset, config.layer_norm_eps, config.hidden_dropout,
        )
        self.project = (
            nn.Linear(config.embedding_size, config.hidden_size)
            if config.embedding_size != config.hidden_size else None
        )
        self.layers = nn.ModuleList(Layer(config) for _ in range(config.unique_layers))
        if config.share_layers and config.shared_blocks != "all":
            share_blocks(self.layers, config.shared_blocks)
        self.pooler = Pooler(config.hidden_size) if pooler else None
        self.packed = False  # see `packed_encoding`

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, output_hidden_states: bool = False,
                first_only: bool = False):
        """Return (last hidden state, tuple of every layer's hidden states or None, pooled or None).

        `first_only` (sequence-level heads, which read the first position alone): the last layer
        computes its query, attention output and feed-forward block for the first position only
        (its keys and values still cover every token), and the last hidden state is (batch, 1,
        hidden). The same numbers for that position, about 14% less compute in a 6-layer encoder.
        Ignored with `output_hidden_states` and by causal encoders (their pooler reads the last token).
        """
        first_only = first_only and not output_hidden_states and not self.config.causal
        if self.packed and not self.config.causal and not output_hidden_states and attention_mask is not None:
            return self.forward_packed(input_ids, attention_mask, token_type_ids, first_only)
        x = self.embeddings(input_ids, token_type_ids)  # (batch, seq, embedding)
        if self.project is not None:
            x = self.project(x)  # (batch, seq, hidden)
        dtype = torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else x.dtype
        causal = self.config.causal
        mask = causal_bias(attention_mask, x.shape[1], dtype, x.device) if causal else attention_bias(attention_mask, dtype)
        states = [x] if output_hidden_states else None
        last = self.config.num_layers - 1
        for i in range(self.config.num_layers):
            x = self.layers[i % len(self.layers)](x, mask, first_only and i == last)
            if states is not None:
                states.append(x)
        pooled = None
        if self.pooler is not None:
            pooled = self.pooler(x, last_positions(attention_mask, x) if causal else None)
        return x, tuple(states) if states is not None else None, pooled

    def forward_packed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                       token_type_ids: torch.Tensor | None = None, first_only: bool = False):
        """`forward` without compute on padding: (last hidden state, None, pooled).

        Real tokens are gathered into one (tokens, hidden) matrix that the linear layers and norms
        process; attention runs per sequence. Padded positions of the returned (batch, seq, hidden)
        state are zero; with `first_only` it is (batch, 1, hidden), as in `forward`.
        """
        x = self.embeddings(input_ids, token_type_ids)  # (batch, seq, embedding)
        real = attention_mask.bool()
        lengths = real.sum(1).tolist()
        x = x[real]  # (tokens, embedding), sequence by sequence
        if self.project is not None:
            x = self.project(x)
        firsts = None
        if first_only and min(lengths) > 0:  # each sequence's first token in the packed rows
            firsts = torch.tensor([0, *lengths[:-1]], device=x.device).cumsum(0)
        last = self.config.num_layers - 1
        for i in range(self.config.num_layers):
            layer = self.layers[0 if self.config.share_layers else i]
            x = layer.forward_packed(x, lengths, firsts if i == last else None)
        if firsts is not None:
            out = x[:, None]  # (batch, 1, hidden)
            return out, None, self.pooler(out) if self.pooler is not None else None
        out = x.new_zeros(*attention_mask.shape, x.shape[-1])
        out[real] = x
        pooled = self.pooler(out) if self.pooler is not None else None
        return out, None, pooled


@contextlib.contextmanager
def packed_encoding(model: nn.Module, enabled: bool = True) -> Iterator[None]:
    """Within the block, encoders of `model` skip padding (`Encoder.forward_packed`), in training
    (dropout included) and inference alike; causal encoders and hidden-state outputs stay padded."""
    encoders = [m for m in model.modules() if isinstance(m, Encoder)]
    before = [e.packed for e in encoders]
    for e in encoders:
        e.packed = enabled
    try:
        yield
    finally:
        for e, value in zip(encoders, before, strict=True):
            e.packed = value


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """BERT's initialisation: normal(0, 0.02) weights, zero biases, unit layer norms."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=std)
            if m.padding_idx is not None:
                with torch.no_grad():
                    m.weight[m.padding_idx].zero_()
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
