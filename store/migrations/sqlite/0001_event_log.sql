-- The event log. The first seven columns are sqlite-es' own schema, so that
-- sqlite-es appends through its own INSERT unchanged; its primary key must
-- stay as it is, because sqlite-es recognises a conflicting append by the
-- primary-key violation. The columns after them are filled by the database:
--
--   position     the global log position: one more than the highest so far,
--                set by the trigger below. SQLite admits one writer at a
--                time, so positions are handed out in commit order.
--   event_id     a random (version 4) UUID per event.
--   recorded_at  when the event was appended, UTC, millisecond precision.
CREATE TABLE events
(
    aggregate_type text                          NOT NULL,
    aggregate_id   text                          NOT NULL,
    sequence       integer CHECK (sequence >= 0) NOT NULL,
    event_type     text                          NOT NULL,
    event_version  text                          NOT NULL,
    payload        text                          NOT NULL,
    metadata       text                          NOT NULL,
    position       integer,
    event_id       text                          NOT NULL DEFAULT (lower(
        hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' ||
        substr(hex(randomblob(2)), 2) || '-' ||
        substr('89ab', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(2)), 2) || '-' ||
        hex(randomblob(6)))),
    recorded_at    text                          NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
) STRICT;

CREATE UNIQUE INDEX events_by_position ON events (position);

-- max(position) is read through the index, so this costs one index probe.
CREATE TRIGGER events_assign_position
    AFTER INSERT ON events
BEGIN
    UPDATE events
       SET position = (SELECT coalesce(max(position), 0) + 1 FROM events)
     WHERE rowid = NEW.rowid;
END;

-- The log is append-only: readers rely on never seeing an event change or
-- disappear behind them. The one update allowed is the trigger above
-- giving a new row its position.
CREATE TRIGGER events_append_only_update
    BEFORE UPDATE ON events
    WHEN OLD.position IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'the event log is append-only: UPDATE on events is refused');
END;

CREATE TRIGGER events_append_only_delete
    BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'the event log is append-only: DELETE on events is refused');
END;

-- The latest snapshot of each case, written by the engine after a commit
-- that crosses a multiple of its snapshot interval. A cache: the events stay
-- the truth. A snapshot of another revision of the aggregate's state, or one
-- that no longer deserialises, is ignored.
CREATE TABLE case_snapshots
(
    aggregate_type text    NOT NULL,
    aggregate_id   text    NOT NULL,
    version        integer NOT NULL CHECK (version > 0),
    revision       integer NOT NULL,
    payload        text    NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id)
) STRICT;
