"""Tasks: featurisation, losses, inference post-processing and metrics, one module per task."""
