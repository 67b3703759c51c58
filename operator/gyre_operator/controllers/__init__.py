"""Reconcilers, one module per kind; main.py registers them with kopf."""
