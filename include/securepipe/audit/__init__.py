"""Evidence, in one package: the hash-chained, signed audit log, the per-run lineage manifests
beside it, the records they hold, the compliance checks and their report.

Public API: `log.AuditLog`, `log.verify_log`, `manifest.build_manifest` / `manifest.write_manifest`,
`records.TriggerRecord` / `PrivacyRecord` / `PiiCounts` / `RunManifest`, `checks.CHECKS` /
`checks.run_check`, `report.build_report` / `report.write_report`.
"""
