package memapi

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func TestRestartKeepsMemoriesCountersAndIdempotency(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nested", "dir", "memapi.db")
	s, err := Open(Options{Path: path})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	srv := startAPI(t, s)
	first := send(t, srv, "POST", "/memories", storeBody, withKey("t", "k")...)
	expect(t, "before restart", first, 200, "")
	srv.Close()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = openTestStore(t, Options{Path: path})
	m, found, err := s.Get("t", "1,2,3")
	if err != nil || !found || string(m.Payload) != `{"v":1}` {
		t.Fatalf("after restart Get = %+v found=%v err=%v", m, found, err)
	}
	if ts := s.TenantStats("t"); ts != (TenantStats{Applied: 1}) {
		t.Fatalf("after restart stats = %+v, want applied 1", ts)
	}
	srv = startAPI(t, s)
	again := send(t, srv, "POST", "/memories", storeBody, withKey("t", "k")...)
	expect(t, "repeat after restart", again, 200, first.body)
	if again.header.Get(headerReplayed) != "true" {
		t.Fatal("repeat after restart was applied again")
	}
	if ts := s.TenantStats("t"); ts != (TenantStats{Applied: 1, Suppressed: 1}) {
		t.Fatalf("stats = %+v, want applied 1 suppressed 1", ts)
	}
}

func TestHistoryKeepsApplyOrder(t *testing.T) {
	s := openTestStore(t, Options{})
	srv := startAPI(t, s)
	steps := []struct{ method, path, body, op string }{
		{"POST", "/memories", storeBody, "store"},
		{"DELETE", "/memories/1,2,3", "", "delete"},
		{"POST", "/memories", `{"coord":"1.0,2.0,3.0","payload":{"v":2}}`, "store"},
		{"POST", "/graph/link", `{"from_coord":"1,2,3","to_coord":"4,5,6","link_type":"next","weight":0.5}`, "link"},
	}
	for i, st := range steps {
		h := []string{headerTenant, "t", headerRequestID, st.op + string(rune('0'+i))}
		expect(t, st.op, send(t, srv, st.method, st.path, st.body, h...), 200, "")
	}

	hist := s.History("t", "1,2,3")
	if len(hist) != len(steps) {
		t.Fatalf("history = %+v, want %d entries", hist, len(steps))
	}
	for i, e := range hist {
		if want := steps[i].op + string(rune('0'+i)); e.Op != steps[i].op || e.RequestID != want {
			t.Fatalf("entry %d = %+v, want op %s request %s", i, e, steps[i].op, want)
		}
		if i > 0 && e.At.Before(hist[i-1].At) {
			t.Fatalf("entry %d at %v is before entry %d at %v", i, e.At, i-1, hist[i-1].At)
		}
	}
	if h := s.History("t", "4,5,6"); len(h) != 0 {
		t.Fatalf("link target has history %+v, want none (links are filed under from_coord)", h)
	}

	got := send(t, srv, "GET", "/history/1,2,3", "", tenant("t")...)
	expect(t, "history endpoint", got, 200, "")
	var served []HistoryEntry
	if err := json.Unmarshal([]byte(got.body), &served); err != nil {
		t.Fatalf("history body %s: %v", got.body, err)
	}
	if len(served) != len(hist) {
		t.Fatalf("history endpoint returned %d entries, want %d", len(served), len(hist))
	}
	for i := range served {
		if served[i].Op != hist[i].Op || !served[i].At.Equal(hist[i].At) {
			t.Fatalf("endpoint entry %d = %+v, want %+v", i, served[i], hist[i])
		}
	}
	expect(t, "empty history", send(t, srv, "GET", "/history/9,9,9", "", tenant("t")...), 200, "[]")
}

func TestGetRejectsInvalidCoord(t *testing.T) {
	s := openTestStore(t, Options{})
	if _, _, err := s.Get("t", "1,2"); !errors.Is(err, ErrInvalidCoord) {
		t.Fatalf("Get(1,2) error = %v, want ErrInvalidCoord", err)
	}
}

func TestSecondOpenOfALockedFileFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "memapi.db")
	openTestStore(t, Options{Path: path})
	start := time.Now()
	if s, err := Open(Options{Path: path}); err == nil {
		s.Close()
		t.Fatal("second Open of a file in use succeeded")
	}
	if time.Since(start) > 30*time.Second {
		t.Fatal("second Open hung on the file lock")
	}
}
