-- Clock outcomes per division, body and start day, kept by the case
-- projection as clocks change, so that the breach board sums days instead
-- of counting every clock in scope on each call. `division` and `body` are
-- '' where the clock names none; `day` is the UTC day the clock started
-- (YYYY-MM-DD). A clock counts in one of `breached`, `met` or `running`,
-- or in none once it stopped otherwise.
CREATE TABLE sla_body_counts
(
    division text   NOT NULL,
    body     text   NOT NULL,
    day      text   NOT NULL,
    breached bigint NOT NULL,
    met      bigint NOT NULL,
    running  bigint NOT NULL,
    PRIMARY KEY (division, day, body)
);

INSERT INTO sla_body_counts (division, body, day, breached, met, running)
SELECT coalesce(division, ''), coalesce(body, ''),
       to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
       count(*) FILTER (WHERE status = 'breached'),
       count(*) FILTER (WHERE status = 'met'),
       count(*) FILTER (WHERE stopped_at IS NULL AND status <> 'breached')
FROM sla_clocks
GROUP BY 1, 2, 3;

-- The board counts the clocks of the first, partial day exactly.
CREATE INDEX sla_clocks_by_start ON sla_clocks (started_at);
