"""Evaluation: scores per checkpoint (identity, prompt fidelity, palette), the quality ratio, ratings, reports."""
