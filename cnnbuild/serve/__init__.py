"""Stage 5, run folder → export, predictions, evaluation."""
