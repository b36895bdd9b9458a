-- Statistics as of a past date (issue 13): every counter row is kept per
-- day as well as per month, the calendar day in +08:00 on which the events
-- it counts happened (for follow-ups, the day of the follow-up, in the
-- month of the agreement they follow up), so that a query sums the rows up
-- to the end of any day. Current figures sum every day, as before.
--
-- The counters cannot be split by day after the fact: the two statistics
-- read models start again from the log, as 0010 had them do.
DROP TABLE statistics;
CREATE TABLE statistics
(
    division                  text   NOT NULL,
    level                     text   NOT NULL,
    period                    text   NOT NULL,
    day                       text   NOT NULL,
    registered                bigint NOT NULL DEFAULT 0,
    moved_in                  bigint NOT NULL DEFAULT 0,
    reopened                  bigint NOT NULL DEFAULT 0,
    escalated_up              bigint NOT NULL DEFAULT 0,
    taken_over                bigint NOT NULL DEFAULT 0,
    sent_down                 bigint NOT NULL DEFAULT 0,
    agreements                bigint NOT NULL DEFAULT 0,
    terminations              bigint NOT NULL DEFAULT 0,
    mediations_moved          bigint NOT NULL DEFAULT 0,
    referred                  bigint NOT NULL DEFAULT 0,
    closed                    bigint NOT NULL DEFAULT 0,
    closed_at_or_below_intake bigint NOT NULL DEFAULT 0,
    closed_on_time            bigint NOT NULL DEFAULT 0,
    agreed_at_or_below_origin bigint NOT NULL DEFAULT 0,
    agreements_followed_up    bigint NOT NULL DEFAULT 0,
    agreements_performed      bigint NOT NULL DEFAULT 0,
    evaluations               bigint NOT NULL DEFAULT 0,
    satisfied                 bigint NOT NULL DEFAULT 0,
    basically_satisfied       bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (division, level, period, day)
);
CREATE INDEX statistics_by_period ON statistics (period, division);
DELETE FROM statistics_cases;
DELETE FROM projection_checkpoints WHERE name = 'statistics';

DROP TABLE petition_statistics;
CREATE TABLE petition_statistics
(
    division                text   NOT NULL,
    level                   text   NOT NULL,
    period                  text   NOT NULL,
    day                     text   NOT NULL,
    received                bigint NOT NULL DEFAULT 0,
    acceptance_decided      bigint NOT NULL DEFAULT 0,
    acceptance_in_time      bigint NOT NULL DEFAULT 0,
    opinions                bigint NOT NULL DEFAULT 0,
    opinions_on_time        bigint NOT NULL DEFAULT 0,
    review_opinions         bigint NOT NULL DEFAULT 0,
    review_opinions_on_time bigint NOT NULL DEFAULT 0,
    evaluations             bigint NOT NULL DEFAULT 0,
    satisfied               bigint NOT NULL DEFAULT 0,
    basically_satisfied     bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (division, level, period, day)
);
CREATE INDEX petition_statistics_by_period ON petition_statistics (period, division);
DELETE FROM petition_statistics_cases;
DELETE FROM projection_checkpoints WHERE name = 'petition_statistics';

-- The clocks' outcomes per day too (the day a clock stopped in time, or
-- its breached due time passed), refilled from the clocks as 0012 filled
-- them, so the case projection goes on where it is.
DROP TABLE sla_stage_counts;
CREATE TABLE sla_stage_counts
(
    aggregate_type text   NOT NULL,
    division       text   NOT NULL,
    month          text   NOT NULL,
    day            text   NOT NULL,
    stage          text   NOT NULL,
    met            bigint NOT NULL,
    breached       bigint NOT NULL,
    PRIMARY KEY (aggregate_type, division, month, day, stage)
);

INSERT INTO sla_stage_counts (aggregate_type, division, month, day, stage, met, breached)
SELECT aggregate_type, division, left(day, 7), day, stage, sum(met), sum(breached)
FROM (
    SELECT aggregate_type, coalesce(division, '') AS division,
           to_char((stopped_at AT TIME ZONE 'UTC') + interval '8 hours', 'YYYY-MM-DD') AS day,
           stage, 1 AS met, 0 AS breached
    FROM sla_clocks WHERE status = 'met' AND stopped_at IS NOT NULL
    UNION ALL
    SELECT aggregate_type, coalesce(breach_division, division, ''),
           to_char((coalesce(breached_due_at, due_at) AT TIME ZONE 'UTC') + interval '8 hours',
                   'YYYY-MM-DD'),
           stage, 0, 1
    FROM sla_clocks WHERE status = 'breached'
) AS outcomes
GROUP BY aggregate_type, division, day, stage;
