-- Idempotent commands. The engine writes into each event's metadata the
-- caller's agency and request id, a hash of the request, and an id of this
-- execution (command_id). The trigger below records the request in the same
-- transaction as its events, so a request is recorded exactly when its
-- events commit. A second execution of the same request (a concurrent
-- retry) has another command_id: its insert fails with a unique violation,
-- its transaction rolls back, and the engine answers it with the first
-- execution's outcome.
CREATE TABLE command_requests
(
    agency         text   NOT NULL,
    request_id     text   NOT NULL,
    request_hash   text   NOT NULL,
    command_id     text   NOT NULL,
    aggregate_type text   NOT NULL,
    aggregate_id   text   NOT NULL,
    last_sequence  bigint NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agency, request_id)
);

CREATE FUNCTION events_record_request() RETURNS trigger
LANGUAGE plpgsql AS
$$
BEGIN
    IF NEW.metadata ? 'request_id' THEN
        INSERT INTO command_requests AS r
            (agency, request_id, request_hash, command_id, aggregate_type, aggregate_id, last_sequence)
        VALUES (coalesce(NEW.metadata ->> 'agency', ''), NEW.metadata ->> 'request_id',
                coalesce(NEW.metadata ->> 'request_hash', ''), coalesce(NEW.metadata ->> 'command_id', ''),
                NEW.aggregate_type, NEW.aggregate_id, NEW.sequence)
        ON CONFLICT (agency, request_id) DO UPDATE
            SET last_sequence = excluded.last_sequence
            WHERE r.command_id = excluded.command_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'request % of agency % has already been carried out',
                NEW.metadata ->> 'request_id', NEW.metadata ->> 'agency'
                USING ERRCODE = 'unique_violation';
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER events_record_request
    AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION events_record_request();

-- Events are filtered by the division that held the case after the event,
-- or before it when the event moved the case (metadata keys `division` and
-- `prior_division`, written by the engine).

-- The case index: one row per case with the columns lists filter on and
-- the case's state as of `position`. A read model, rebuilt from the log by
-- the projection runner; never written by commands.
CREATE TABLE case_index
(
    aggregate_type text   NOT NULL,
    case_id        text   NOT NULL,
    division       text,
    level          text,
    status         text   NOT NULL,
    category       text,
    risk           text,
    channel        text,
    version        bigint NOT NULL,
    position       bigint NOT NULL,
    state          jsonb  NOT NULL,
    PRIMARY KEY (aggregate_type, case_id)
);

CREATE INDEX case_index_by_division ON case_index (aggregate_type, division, case_id);
CREATE INDEX case_index_by_status ON case_index (aggregate_type, status, case_id);

-- How far each projection has applied the log. A batch of events and the
-- new checkpoint are written in one transaction, and the checkpoint only
-- moves from the value the batch was read after, so no event is applied
-- twice or skipped, whatever crashes and however many runners there are.
CREATE TABLE projection_checkpoints
(
    name       text        PRIMARY KEY,
    position   bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
