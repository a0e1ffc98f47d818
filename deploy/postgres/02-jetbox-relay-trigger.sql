-- Notifies jetbox relay (LISTEN jetbox_relay) after each statement that
-- inserts into outbox_events, so new rows move at once instead of at the
-- relay's next poll. 'jetbox relay --install-trigger' installs the same.
CREATE OR REPLACE FUNCTION jetbox_relay_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('jetbox_relay', '');
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS jetbox_relay_notify ON outbox_events;
CREATE TRIGGER jetbox_relay_notify AFTER INSERT ON outbox_events
    FOR EACH STATEMENT EXECUTE FUNCTION jetbox_relay_notify();
