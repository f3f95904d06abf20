"""Per-run lineage manifests, signed and anchored in the audit log (see manifest.py)."""
