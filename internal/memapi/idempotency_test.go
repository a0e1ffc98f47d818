package memapi

import (
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

const storeBody = `{"coord":"1,2,3","payload":{"v":1}}`

func TestIdempotentRepeatIsReplayedNotApplied(t *testing.T) {
	s := openTestStore(t, Options{})
	srv := startAPI(t, s)
	h := append(withKey("t", "key-1"), headerRequestID, "req-1")

	first := send(t, srv, "POST", "/memories", storeBody, h...)
	expect(t, "first", first, 200, `{"coord":"1,2,3","memory_type":"episodic"}`)
	if first.header.Get(headerReplayed) != "" {
		t.Fatal("first answer is marked replayed")
	}
	second := send(t, srv, "POST", "/memories", storeBody, h...)
	expect(t, "repeat", second, 200, first.body)
	if second.header.Get(headerReplayed) != "true" {
		t.Fatalf("repeat %s = %q, want true", headerReplayed, second.header.Get(headerReplayed))
	}

	if ts := s.TenantStats("t"); ts != (TenantStats{Applied: 1, Suppressed: 1}) {
		t.Fatalf("stats = %+v, want applied 1 suppressed 1", ts)
	}
	hist := s.History("t", "1,2,3")
	if len(hist) != 1 || hist[0].IdempotencyKey != "key-1" || hist[0].RequestID != "req-1" {
		t.Fatalf("history = %+v, want one store with key-1/req-1", hist)
	}

	// Keys are scoped by tenant: another tenant's same key is a new request.
	other := send(t, srv, "POST", "/memories", storeBody, withKey("u", "key-1")...)
	expect(t, "same key, other tenant", other, 200, "")
	if other.header.Get(headerReplayed) != "" {
		t.Fatal("another tenant's request was replayed from tenant t's record")
	}
	if ts := s.TenantStats("u"); ts.Applied != 1 {
		t.Fatalf("tenant u applied = %d, want 1", ts.Applied)
	}
}

func TestIdempotencyKeyReusedForDifferentRequest(t *testing.T) {
	s := openTestStore(t, Options{})
	srv := startAPI(t, s)
	h := withKey("t", "key-1")

	expect(t, "first", send(t, srv, "POST", "/memories", storeBody, h...), 200, "")
	got := send(t, srv, "POST", "/memories", `{"coord":"1,2,3","payload":{"v":2}}`, h...)
	expect(t, "different body", got, 409, `{"error":"idempotency key reused with a different request"}`)
	got = send(t, srv, "DELETE", "/memories/1,2,3", "", h...)
	expect(t, "different endpoint", got, 409, "")

	if ts := s.TenantStats("t"); ts != (TenantStats{Applied: 1, Conflicts: 2}) {
		t.Fatalf("stats = %+v, want applied 1 conflicts 2", ts)
	}
	m, found, err := s.Get("t", "1,2,3")
	if err != nil || !found || string(m.Payload) != `{"v":1}` {
		t.Fatalf("memory = %+v found=%v err=%v, want the first payload untouched", m, found, err)
	}
	// The conflict did not overwrite the record: the original still replays.
	got = send(t, srv, "POST", "/memories", storeBody, h...)
	if got.status != 200 || got.header.Get(headerReplayed) != "true" {
		t.Fatalf("original after conflict: status %d replayed %q", got.status, got.header.Get(headerReplayed))
	}
}

func TestConcurrentRequestsWithOneKeyApplyOnce(t *testing.T) {
	s := openTestStore(t, Options{})
	srv := startAPI(t, s)
	const n = 50

	answers := make([]response, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			answers[i] = send(t, srv, "POST", "/memories", storeBody, withKey("t", "same")...)
		})
	}
	wg.Wait()

	replayed := 0
	for i, got := range answers {
		if got.status != 200 || got.body != answers[0].body {
			t.Fatalf("answer %d = %d %s, want 200 %s", i, got.status, got.body, answers[0].body)
		}
		if got.header.Get(headerReplayed) == "true" {
			replayed++
		}
	}
	if replayed != n-1 {
		t.Fatalf("%d answers replayed, want %d", replayed, n-1)
	}
	if ts := s.TenantStats("t"); ts != (TenantStats{Applied: 1, Suppressed: n - 1}) {
		t.Fatalf("stats = %+v, want applied 1 suppressed %d", ts, n-1)
	}
	if h := s.History("t", "1,2,3"); len(h) != 1 {
		t.Fatalf("history has %d entries, want 1", len(h))
	}
}

func TestRejectionIsStoredUnderItsKey(t *testing.T) {
	s := openTestStore(t, Options{})
	srv := startAPI(t, s)
	bad := `{"coord":"1,2","payload":{}}`

	first := send(t, srv, "POST", "/memories", bad, withKey("t", "k")...)
	expect(t, "invalid", first, 422, "")
	second := send(t, srv, "POST", "/memories", bad, withKey("t", "k")...)
	expect(t, "invalid repeat", second, 422, first.body)
	if second.header.Get(headerReplayed) != "true" {
		t.Fatal("repeat of a 422 was not replayed")
	}
	if ts := s.TenantStats("t"); ts != (TenantStats{Suppressed: 1}) {
		t.Fatalf("stats = %+v, want only suppressed 1", ts)
	}
}

func TestExpiredIdempotencyRecordsAreSwept(t *testing.T) {
	s := openTestStore(t, Options{IdempotencyTTL: 200 * time.Millisecond})
	srv := startAPI(t, s)

	expect(t, "first", send(t, srv, "POST", "/memories", storeBody, withKey("t", "k")...), 200, "")
	if n := idempotencyRecords(t, s, "t"); n != 1 {
		t.Fatalf("%d idempotency records after the write, want 1", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for idempotencyRecords(t, s, "t") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("expired idempotency record was never swept")
		}
		time.Sleep(20 * time.Millisecond)
	}

	got := send(t, srv, "POST", "/memories", storeBody, withKey("t", "k")...)
	expect(t, "after expiry", got, 200, "")
	if got.header.Get(headerReplayed) != "" {
		t.Fatal("request after expiry was replayed")
	}
	if ts := s.TenantStats("t"); ts != (TenantStats{Applied: 2}) {
		t.Fatalf("stats = %+v, want applied 2", ts)
	}
}

func TestExpiredRecordIsIgnoredBeforeTheSweep(t *testing.T) {
	s := openTestStore(t, Options{IdempotencyTTL: time.Hour})
	now := time.Now()
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := writeTenant(tx, "t")
		if err != nil {
			return err
		}
		rec := idempotencyRecord{at: now.Add(-2 * time.Hour), answer: answer{status: 200, body: []byte(`{}`)}}
		return b.idempotency.Put([]byte("k"), rec.encode())
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		b, _ := readTenant(tx, "t")
		if _, ok := s.lookupIdempotency(b.idempotency, "k", now); ok {
			t.Error("a record past its TTL is still honoured")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func idempotencyRecords(t *testing.T, s *Store, tenantName string) int {
	t.Helper()
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		if b, ok := readTenant(tx, tenantName); ok {
			n = b.idempotency.Stats().KeyN
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
