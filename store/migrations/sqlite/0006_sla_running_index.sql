-- Boards list running clocks earliest due first, paged by (due, case,
-- stage, start). An index in exactly that order, over running clocks only,
-- answers "the next 50" by reading 50 entries, however many clocks run.
DROP INDEX sla_clocks_running_by_due;
CREATE INDEX sla_clocks_running_by_due
    ON sla_clocks (due_at, case_id, stage, started_at) WHERE stopped_at IS NULL;
