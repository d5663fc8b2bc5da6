"""Recipes: stages called in order. ``r1`` is the DeepSeek-R1 pipeline."""
