"""``coopmap ablate``: Stage 1, the four Stage-2 variants, evaluation, filtering and the ablation table."""
