-- Clock outcomes per kind of case, division, stage and month, kept by the
-- case projection as clocks change, so that the statistics' on-time rate
-- of each stage sums months instead of counting every clock in scope on
-- each call. A met clock counts at the division holding it, in the month
-- (Beijing time, YYYY-MM) it stopped; a breached one at the division that
-- held the case when its due time passed, in the month of that due time.
-- `division` is '' where the clock names none.
CREATE TABLE sla_stage_counts
(
    aggregate_type text   NOT NULL,
    division       text   NOT NULL,
    month          text   NOT NULL,
    stage          text   NOT NULL,
    met            bigint NOT NULL,
    breached       bigint NOT NULL,
    PRIMARY KEY (aggregate_type, division, month, stage)
);

INSERT INTO sla_stage_counts (aggregate_type, division, month, stage, met, breached)
SELECT aggregate_type, division, month, stage, sum(met), sum(breached)
FROM (
    SELECT aggregate_type, coalesce(division, '') AS division,
           to_char((stopped_at AT TIME ZONE 'UTC') + interval '8 hours', 'YYYY-MM') AS month,
           stage, 1 AS met, 0 AS breached
    FROM sla_clocks WHERE status = 'met' AND stopped_at IS NOT NULL
    UNION ALL
    SELECT aggregate_type, coalesce(breach_division, division, ''),
           to_char((coalesce(breached_due_at, due_at) AT TIME ZONE 'UTC') + interval '8 hours',
                   'YYYY-MM'),
           stage, 0, 1
    FROM sla_clocks WHERE status = 'breached'
) AS outcomes
GROUP BY aggregate_type, division, month, stage;
