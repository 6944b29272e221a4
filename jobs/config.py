"""Batch re-scoring settings (pure pydantic: imported by core.settings)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class JobSettings(BaseModel):
    default_workers: int = Field(2, ge=0, le=256, description="Worker processes/actors (0: run in-process)")
    api_workers: int = Field(
        1,
        ge=0,
        le=64,
        description="Workers of a job started through POST /v1/jobs (0: in a thread of the API)",
    )
    max_in_flight_per_worker: int = Field(
        2, ge=1, le=64, description="Items queued per local worker (bounds memory; keeps workers busy)"
    )
    commit_every: int = Field(32, ge=1, le=10_000, description="Commit results after this many items...")
    commit_interval_s: float = Field(1.0, gt=0, le=600, description="...or after this many seconds")
    load_chunk: int = Field(5000, ge=1, description="Pending items read from the database at a time")
    lease_s: float = Field(
        120.0, gt=0, description="A running job whose runner has not written for this long may be taken over"
    )
    max_item_attempts: int = Field(
        2, ge=1, le=10, description="Worker deaths an item may cause (running alone) before it fails"
    )
    # --- Ray -----------------------------------------------------------------------------------
    ray_batch_size: int = Field(4, ge=1, le=4096, description="Items per map_batches call")
    ray_chunk: int = Field(20_000, ge=1, description="Items per Ray dataset (bounds driver memory)")
    ray_local_num_cpus: int = Field(2, ge=1, description="CPUs of a local Ray instance (no --ray-address)")
    ray_object_store_mb: int = Field(256, ge=64, description="Object store of a local Ray instance, MiB")
    ray_num_gpus_per_actor: float = Field(
        0.0, ge=0, description="GPUs per actor (embedding on a GPU cluster)"
    )
