package pgtest

import "testing"

// A cluster starts (as root too), takes SomaBrain's table, and takes a row
// as SomaBrain's ORM writes it: every column given, since the table has no
// defaults.
func TestStartCreatesSomaBrainsTable(t *testing.T) {
	s := Start(t)
	s.CreateOutboxTable(t)
	s.Exec(t, `INSERT INTO outbox_events (created_at, topic, payload, status, retries, dedupe_key, tenant_id)
VALUES (now(), 'memory.store', '{"coord": [0.1, 0.2, 0.3], "payload": {}}', 'pending', 0, 'k', NULL)`)
}
