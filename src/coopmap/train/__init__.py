"""Training: optimizer and schedule, resumable sampling, atomic checkpoints, logs, the loop and DDP."""
