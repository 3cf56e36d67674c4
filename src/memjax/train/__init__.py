"""Optimiser recipes, the training engine and the bAbI protocols."""
