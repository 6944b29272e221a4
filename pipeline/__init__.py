"""Per-recording processing shared by the upload API and batch jobs: decode once, then run the
recording checks and the visualizer effects on the same arrays. Runs inside a worker process."""
