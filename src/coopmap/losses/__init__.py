"""Training losses: base geometry loss and the three improvements."""
