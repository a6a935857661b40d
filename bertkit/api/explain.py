"""Which words drove a prediction: integrated gradients (Captum) over the word embeddings, summed
per word, rendered as HTML (words shaded by weight) and as a PNG bar chart."""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bertkit.io import atomic_write_text
from bertkit.plotting import finish_figure, new_figure


@dataclass
class Explanation:
    """Word weights of one prediction: positive pushed towards `target`, negative away from it."""

    text: str
    target: str
    probability: float
    words: list[tuple[str, int, int, float]]  # (word, start char, end char, weight), in text order

    def weights(self) -> dict[str, float]:
        """word -> weight (a word that occurs several times keeps its largest weight)."""
        out: dict[str, float] = {}
        for word, _, _, weight in self.words:
            out[word] = max(out.get(word, weight), weight)
        return out

    def top(self, n: int = 5) -> list[tuple[str, float]]:
        return sorted(self.weights().items(), key=lambda kv: -kv[1])[:n]

    def to_html(self) -> str:
        """The text with each word shaded green (towards the target) or red (away from it)."""
        scale = max((abs(w) for *_, w in self.words), default=1.0) or 1.0
        parts, cursor = [], 0
        for _, start, end, weight in self.words:
            parts.append(html.escape(self.text[cursor:start]))
            colour = "0,160,0" if weight >= 0 else "200,0,0"
            alpha = abs(weight) / scale
            parts.append(f'<span title="{weight:+.3f}" style="background: rgba({colour},{alpha:.2f})">'
                         f"{html.escape(self.text[start:end])}</span>")
            cursor = end
        parts.append(html.escape(self.text[cursor:]))
        head = f"<p><b>{html.escape(self.target)}</b> (probability {self.probability:.3f})</p>"
        return f"{head}<p>{''.join(parts)}</p>"

    def save_html(self, path: str | Path) -> None:
        atomic_write_text(path, f"<!doctype html><meta charset='utf-8'>{self.to_html()}\n")

    def plot(self, path: str | Path | None = None, show: bool = False, n: int = 15) -> Any:
        """Horizontal bars of the `n` words with the largest absolute weights (PNG at `path`)."""
        ranked = sorted(self.weights().items(), key=lambda kv: -abs(kv[1]))[:n][::-1]
        fig, ax = new_figure(show, figsize=(6, 0.35 * len(ranked) + 1.2))
        ax.barh([w for w, _ in ranked], [v for _, v in ranked],
                color=["tab:green" if v >= 0 else "tab:red" for _, v in ranked])
        ax.set_xlabel(f"contribution to {self.target!r}")
        return finish_figure(fig, path, show)


def explain(predictor: Any, text: str, target: str | int | None = None, n_steps: int = 50) -> Explanation:
    """Integrated-gradients word weights for `predictor`'s prediction of `text` (or of `target`, a
    class name or index). Needs a task with one output row per text (classification)."""
    try:
        from captum.attr import LayerIntegratedGradients
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError("explain needs Captum: pip install 'bertkit[explain]'") from error
    if not isinstance(text, str) or not text.strip():
        raise ValueError("explain takes one non-empty text")
    model, tokenizer, task = predictor.model, predictor.tokenizer, predictor.task
    enc = tokenizer([text], max_length=task.maxlen, truncation=True, return_offsets=True, return_word_ids=True,
                    return_special_tokens_mask=True)
    device = next(model.parameters()).device
    ids = torch.tensor(enc["input_ids"], device=device)
    mask = torch.tensor(enc["attention_mask"], device=device)
    types = torch.tensor(enc["token_type_ids"], device=device) if "token_type_ids" in enc else None

    def forward(input_ids: torch.Tensor) -> torch.Tensor:
        n = input_ids.shape[0]
        logits = model(input_ids, mask.expand(n, -1), types.expand(n, -1) if types is not None else None).logits
        if logits.dim() != 2:
            raise ValueError(f"explain needs one output row per text; the {task.name!r} task's head gives {logits.dim()}-D outputs")
        return logits

    model.eval()
    with torch.no_grad():
        logits = forward(ids)[0]
    index = _target_index(target, task.labels, logits)
    special = torch.tensor(enc["special_tokens_mask"], device=device).bool()
    baseline = torch.where(special, ids, torch.full_like(ids, tokenizer.pad_id or 0))  # keep [CLS]/[SEP]
    attributions = LayerIntegratedGradients(forward, model.encoder.embeddings.word).attribute(
        ids, baselines=baseline, target=index, n_steps=n_steps)
    scores = attributions.sum(-1)[0].detach().cpu()  # (seq,)
    scores = scores / scores.norm().clamp(min=1e-12)
    probability = float(logits.softmax(-1)[index]) if logits.numel() > 1 else float(logits[index])
    label = task.labels[index] if task.labels else str(index)
    return Explanation(text, label, probability, _words(text, enc["offsets"][0], enc["word_ids"][0], scores))


def _target_index(target: str | int | None, labels: list[str], logits: torch.Tensor) -> int:
    if target is None:
        return int(logits.argmax())
    if isinstance(target, str):
        if target not in labels:
            raise ValueError(f"target {target!r} is not one of the classes {labels}")
        return labels.index(target)
    if not 0 <= int(target) < logits.numel():
        raise ValueError(f"target {target} is outside the outputs 0..{logits.numel() - 1}")
    return int(target)


def _words(text: str, offsets: list, word_ids: list, scores: torch.Tensor) -> list[tuple[str, int, int, float]]:
    """Token scores summed per word, with the word's character span in `text`."""
    words: dict[int, list] = {}
    for (start, end), word, score in zip(offsets, word_ids, scores.tolist(), strict=True):
        if word is None:
            continue
        entry = words.setdefault(word, [start, end, 0.0])
        entry[0], entry[1] = min(entry[0], start), max(entry[1], end)
        entry[2] += score
    return [(text[s:e], s, e, w) for s, e, w in (words[k] for k in sorted(words))]
