"""Run the pipeline on the embedded default: SQLite, LocalExecutor, files, local KMS emulator."""
