"""One training loop for every method; checkpoints, resume, prior preservation, logging."""
