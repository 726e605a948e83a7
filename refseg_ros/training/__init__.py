"""Training, evaluation and their metrics."""
