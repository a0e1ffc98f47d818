package relay

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"
)

// NotifyChannel is the channel the trigger notifies and the relay LISTENs
// on.
const NotifyChannel = "jetbox_relay"

// TriggerSQL makes PostgreSQL notify NotifyChannel after each statement
// that inserts into outbox_events, so a tailing relay moves a new row at
// once instead of at its next poll. One notification per statement keeps
// the cost to SomaBrain's inserts negligible; the notification is sent at
// COMMIT, when the rows become visible. deploy/postgres holds the same
// text (a test keeps the two equal).
const TriggerSQL = `CREATE OR REPLACE FUNCTION jetbox_relay_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('jetbox_relay', '');
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS jetbox_relay_notify ON outbox_events;
CREATE TRIGGER jetbox_relay_notify AFTER INSERT ON outbox_events
    FOR EACH STATEMENT EXECUTE FUNCTION jetbox_relay_notify();
`

// InstallTrigger runs TriggerSQL. It needs the right to create functions
// and triggers on outbox_events, which the relay itself does not.
func InstallTrigger(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := pool.Exec(ctx, TriggerSQL)
	return redactErr(err, pool.Config().ConnConfig)
}
