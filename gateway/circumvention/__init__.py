"""Circumvention: detectors of attempts to get around the filter, and what an incident records (pure, no proxy)."""
