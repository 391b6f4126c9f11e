"""The search stage: the Helpful-Honest-Harmless Pareto front of merge coefficients (Optuna),
scored on held-out items only. It merges and evaluates in one process, so it sits above the
merge and evaluate stages (tooling), as `mixmerge search` does."""
