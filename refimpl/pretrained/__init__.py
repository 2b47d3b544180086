"""Shipped update rules (theta-only .npz files with their config) and the recipe that makes them."""
