-- Running clocks whose breach is not recorded, per kind of case, division,
-- stage and the UTC day they are due, kept by the case projection
-- (projections/src/sla.rs), so that the board's "due soon" sums whole days
-- and counts only the clocks of the window's two partial days one by one.
-- `division` is '' where the clock names none.
CREATE TABLE sla_due_counts
(
    aggregate_type text    NOT NULL,
    division       text    NOT NULL,
    stage          text    NOT NULL,
    due_day        text    NOT NULL,
    running        integer NOT NULL,
    PRIMARY KEY (aggregate_type, division, stage, due_day)
) STRICT;

INSERT INTO sla_due_counts (aggregate_type, division, stage, due_day, running)
SELECT aggregate_type, coalesce(division, ''), stage, strftime('%Y-%m-%d', due_at), count(*)
FROM sla_clocks
WHERE stopped_at IS NULL AND breached_at IS NULL
GROUP BY 1, 2, 3, 4;
