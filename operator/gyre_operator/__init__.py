"""Gyre operator: API types, CRD generation, controllers."""
