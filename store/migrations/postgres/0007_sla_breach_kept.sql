-- A breached clock stays breached (信访工作条例 Art 44–46 make a late step an
-- accountability matter): whatever re-times it later, its row keeps the due
-- time it passed and who held the case at that moment, beside the new due
-- time in due_at.
ALTER TABLE sla_clocks ADD COLUMN breached_due_at timestamptz;
ALTER TABLE sla_clocks ADD COLUMN breach_division text;
ALTER TABLE sla_clocks ADD COLUMN breach_level text;
ALTER TABLE sla_clocks ADD COLUMN breach_body text;
ALTER TABLE sla_clocks ADD COLUMN breach_person text;

-- Until now a re-time cleared a breach, so a row still breached has kept
-- the due time it passed and its holder since.
UPDATE sla_clocks
SET breached_due_at = due_at,
    breach_division = division,
    breach_level    = level,
    breach_body     = body,
    breach_person   = person
WHERE status = 'breached';
