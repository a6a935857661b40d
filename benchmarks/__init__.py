"""Side-by-side benchmarks against Hugging Face transformers; `python -m benchmarks` runs the suite."""
