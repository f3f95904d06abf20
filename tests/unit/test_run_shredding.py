"""A run's intermediate shards are sealed under the run's shredding scope: after `cleanup`, even a copy
kept elsewhere (a backup, an old object version) no longer decrypts."""
from __future__ import annotations

import shutil

import pytest

from securepipe import pipeline
from securepipe.config import aws_from_env
from securepipe.errors import CryptoError
from securepipe.synth import write_patients


def test_cleanup_shreds_the_run_scope_so_copies_of_shards_do_not_decrypt(tmp_path, kms_env):
    source = write_patients(tmp_path / "landing" / "patients.csv", 60, seed=1)
    run = pipeline.RunSettings(run_id="run-1", dataset="patients", input_uri=f"file://{source}",
                               storage_root=tmp_path / "storage", state_dir=tmp_path / "state",
                               kms_key_id=kms_env.key_arn, aws=aws_from_env(), rows_per_shard=30)
    shards = pipeline.ingest(run)
    assert len(shards) == 2 and len(pipeline._load_frame(run, shards[0])) == 30
    backup = tmp_path / "backup"
    shutil.copytree(tmp_path / "storage", backup)

    assert pipeline.cleanup(run) == 2
    run_on_backup = pipeline.RunSettings(**{**run.__dict__, "storage_root": backup})
    with pytest.raises(CryptoError, match="shredded"):
        pipeline._load_frame(run_on_backup, shards[0])
