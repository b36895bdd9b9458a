-- The engine's append is one statement that computes each event's position
-- itself, (transaction id << 20) + n with n its place in the statement, and
-- records the command's request in a data-modifying CTE of that same
-- statement (store/src/append.rs). Two PL/pgSQL row triggers ran on every
-- event before; they cost the database several times the insert itself.
--
-- Rows inserted any other way (postgres-es' own INSERT, a hand-written one)
-- still get a position from the trigger, which now fires only when a row
-- arrives without a position, or with one that is not of the inserting
-- transaction. A row with a position of another transaction is refused:
-- readers rely on every position being above the xmin horizon of the
-- transaction that wrote it. The WHEN clause is evaluated by the executor
-- itself, so the engine's rows never enter PL/pgSQL.
DROP TRIGGER events_assign_position ON events;

CREATE OR REPLACE FUNCTION events_assign_position() RETURNS trigger
LANGUAGE plpgsql AS
$$
DECLARE
    xid bigint := pg_current_xact_id()::text::bigint;
    n   bigint := coalesce(nullif(current_setting('mediation.events_appended', true), ''), '0')::bigint;
BEGIN
    IF NEW.position IS NOT NULL THEN
        RAISE EXCEPTION 'position % was not assigned by this transaction (positions are (transaction id << 20) + n); insert events without a position',
            NEW.position
            USING ERRCODE = 'check_violation';
    END IF;
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
    FOR EACH ROW
    WHEN (NEW.position IS NULL
          OR NEW.position < 0
          OR (NEW.position >> 20) <> pg_current_xact_id()::text::bigint)
    EXECUTE FUNCTION events_assign_position();

-- The request record is written by the append statement itself (a CTE), in
-- the same statement and so the same transaction as the events: a request
-- is still recorded exactly when its events commit, and a second execution
-- of the same request still fails on the primary key and rolls back whole.
DROP TRIGGER events_record_request ON events;
DROP FUNCTION events_record_request();
