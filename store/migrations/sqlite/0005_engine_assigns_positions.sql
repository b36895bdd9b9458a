-- The engine's appender now gives each event its position itself, in the
-- same single-writer transaction that inserts it (and so can report it
-- without reading it back). The trigger stays for rows inserted without
-- one, such as sqlite-es' own appends.
DROP TRIGGER events_assign_position;

CREATE TRIGGER events_assign_position
    AFTER INSERT ON events
    WHEN NEW.position IS NULL
BEGIN
    UPDATE events
       SET position = (SELECT coalesce(max(position), 0) + 1 FROM events)
     WHERE rowid = NEW.rowid;
END;
