"""Evidence: the hash-chained, signed audit log, the compliance checks and their report.

Public API: `log.AuditLog`, `log.append_event`, `log.verify_log`, `checks.CHECKS` /
`checks.run_check`, `report.build_report` / `report.write_report`.
"""
