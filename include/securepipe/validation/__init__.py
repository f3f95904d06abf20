"""Data validation and poisoning guard: profile an accepted batch, check each new one against it."""
