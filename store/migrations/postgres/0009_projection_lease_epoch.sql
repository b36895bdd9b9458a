-- The tenure of a projection's lease, kept beside its checkpoint. A process
-- that takes the lease raises it; a batch moves the checkpoint only while it
-- is still the tenure the batch's process took (see store::projection). The
-- checkpoint row is what both lock, so a batch of an earlier holder either
-- commits before the takeover or not at all.
ALTER TABLE projection_checkpoints ADD COLUMN lease_epoch bigint NOT NULL DEFAULT 0;
