"""Using a trained checkpoint: rebuild its model, predict class probabilities."""
