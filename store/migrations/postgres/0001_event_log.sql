-- The event log. The first seven columns are postgres-es' own schema (with
-- jsonb instead of json), so that postgres-es appends through its own
-- INSERT unchanged. The columns after them are filled by the database:
--
--   position     the global log position, assigned by a trigger from the
--                writing transaction's id: (xid << 20) + n, where n counts
--                the events this transaction has appended so far. Ordering by
--                position orders by transaction id, then by append order.
--                A reader reads only positions below the oldest transaction
--                still running (pg_snapshot_xmin), so no row can later appear
--                below what it has read: a slow transaction holds readers
--                back instead of being skipped. See docs/ARCHITECTURE.md.
--   event_id     a unique id per event, for consumers that deduplicate.
--   recorded_at  when the appending transaction began.
CREATE TABLE events
(
    aggregate_type text                         NOT NULL,
    aggregate_id   text                         NOT NULL,
    sequence       bigint CHECK (sequence >= 0) NOT NULL,
    event_type     text                         NOT NULL,
    event_version  text                         NOT NULL,
    payload        jsonb                        NOT NULL,
    metadata       jsonb                        NOT NULL,
    position       bigint                       NOT NULL,
    event_id       uuid                         NOT NULL DEFAULT gen_random_uuid(),
    recorded_at    timestamptz                  NOT NULL DEFAULT now(),
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);

CREATE UNIQUE INDEX events_by_position ON events (position);

CREATE FUNCTION events_assign_position() RETURNS trigger
LANGUAGE plpgsql AS
$$
DECLARE
    xid bigint := pg_current_xact_id()::text::bigint;
    n   bigint := coalesce(nullif(current_setting('mediation.events_appended', true), ''), '0')::bigint;
BEGIN
    -- 2^43 transactions and 2^20 events per transaction keep the position
    -- inside a signed 64-bit integer.
    IF xid >= 8796093022208 THEN
        RAISE EXCEPTION 'transaction id % is beyond the range the event log can position', xid;
    END IF;
    IF n >= 1048576 THEN
        RAISE EXCEPTION 'one transaction may append at most 1048576 events';
    END IF;
    PERFORM set_config('mediation.events_appended', (n + 1)::text, true);
    NEW.position := (xid << 20) + n;
    RETURN NEW;
END
$$;

CREATE TRIGGER events_assign_position
    BEFORE INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION events_assign_position();

-- The log is append-only: readers rely on never seeing an event change or
-- disappear behind them.
CREATE FUNCTION events_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS
$$
BEGIN
    RAISE EXCEPTION 'the event log is append-only: % on events is refused', TG_OP;
END
$$;

CREATE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_refuse_change();

CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change();

-- The latest snapshot of each case, written by the engine after a commit
-- that crosses a multiple of its snapshot interval. A cache: the events stay
-- the truth. A snapshot of another revision of the aggregate's state, or one
-- that no longer deserialises, is ignored.
CREATE TABLE case_snapshots
(
    aggregate_type text    NOT NULL,
    aggregate_id   text    NOT NULL,
    version        bigint  NOT NULL CHECK (version > 0),
    revision       bigint  NOT NULL,
    payload        jsonb   NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id)
);
