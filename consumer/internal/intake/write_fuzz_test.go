package intake

import (
	"encoding/json"
	"errors"
	"testing"
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"github.com/jetbox-dev/jetbox/consumer/internal/intake/intaketest"
	"github.com/jetbox-dev/jetbox/streams"
)

// Decode never panics, and either refuses a message as bad input or
// returns a write that the contract's checks pass.
func FuzzDecodeWrite(f *testing.F) {
	for _, c := range intaketest.HostileMessages() {
		f.Add(c.Subject, []byte(c.Body), c.Header[streams.HeaderIdempotencyKey], c.Header[streams.HeaderTenant], c.Header[streams.HeaderReplyTo])
	}
	f.Add("memory.sync.3.acme.store", []byte(`{"coord":"1,2,3","payload":{"a":1},"memory_type":"semantic"}`), "k", "acme", "_INBOX.x.1")
	f.Add("memory.acme~2Eeu.fast_ack.link", []byte(`{"from_coord":"1,2,3","to_coord":" -1.5e3 ,0,0","link_type":"related","weight":0.5}`), "", "acme.eu", "")
	f.Add("memory.background.0.acme.delete", []byte(`{"coord":"0,0,0"}`), "k", "", "")
	f.Fuzz(func(t *testing.T, subject string, body []byte, key, tenant, replyTo string) {
		h := nats.Header{}
		for name, v := range map[string]string{streams.HeaderIdempotencyKey: key, streams.HeaderTenant: tenant, streams.HeaderReplyTo: replyTo} {
			if v != "" {
				h.Set(name, v)
			}
		}
		w, err := Decode(intaketest.NewMsg(subject, h, body), 7, []string{"_INBOX."})
		if err != nil {
			if !errors.Is(err, ErrBadInput) {
				t.Fatalf("error %v is not bad input", err)
			}
			return
		}
		if _, err := streams.ParseSubject(subject); err != nil {
			t.Fatalf("accepted subject %q: %v", subject, err)
		}
		if err := streams.CheckHeaderValue(w.IdempotencyKey); err != nil || w.IdempotencyKey == "" {
			t.Fatalf("accepted idempotency key %q: %v", w.IdempotencyKey, err)
		}
		if !json.Valid(body) || !utf8.Valid(body) {
			t.Fatalf("accepted body %q", body)
		}
		if _, err := streams.ParseCoord(w.Coord); err != nil || w.Method == "" || w.Path == "" {
			t.Fatalf("accepted write %+v: %v", w, err)
		}
		if w.Method == "POST" {
			checkForwarded(t, w.Addr.Op, body, w.Body)
		}
	})
}
