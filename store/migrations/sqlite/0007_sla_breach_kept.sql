-- A breached clock stays breached; see the PostgreSQL migration of the same
-- name.
ALTER TABLE sla_clocks ADD COLUMN breached_due_at text;
ALTER TABLE sla_clocks ADD COLUMN breach_division text;
ALTER TABLE sla_clocks ADD COLUMN breach_level text;
ALTER TABLE sla_clocks ADD COLUMN breach_body text;
ALTER TABLE sla_clocks ADD COLUMN breach_person text;

UPDATE sla_clocks
SET breached_due_at = due_at,
    breach_division = division,
    breach_level    = level,
    breach_body     = body,
    breach_person   = person
WHERE status = 'breached';
