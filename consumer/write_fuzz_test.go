package consumer

import (
	"encoding/json"
	"errors"
	"testing"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetbox-dev/jetbox/streams"
)

// fuzzMsg is the part of a jetstream.Msg that decodeWrite reads.
type fuzzMsg struct {
	jetstream.Msg
	subject string
	header  nats.Header
	data    []byte
}

func (m fuzzMsg) Subject() string      { return m.subject }
func (m fuzzMsg) Headers() nats.Header { return m.header }
func (m fuzzMsg) Data() []byte         { return m.data }

// decodeWrite never panics, and either refuses a message as bad input or
// returns a write that the contract's checks pass.
func FuzzDecodeWrite(f *testing.F) {
	for _, c := range hostileMessages() {
		f.Add(c.subject, []byte(c.body), c.header[streams.HeaderIdempotencyKey], c.header[streams.HeaderTenant], c.header[streams.HeaderReplyTo])
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
		w, err := decodeWrite(fuzzMsg{subject: subject, header: h, data: body}, 7, []string{"_INBOX."})
		if err != nil {
			if !errors.Is(err, ErrBadInput) {
				t.Fatalf("error %v is not bad input", err)
			}
			return
		}
		if _, err := streams.ParseSubject(subject); err != nil {
			t.Fatalf("accepted subject %q: %v", subject, err)
		}
		if err := streams.CheckHeaderValue(w.idempotencyKey); err != nil || w.idempotencyKey == "" {
			t.Fatalf("accepted idempotency key %q: %v", w.idempotencyKey, err)
		}
		if !json.Valid(body) || !utf8.Valid(body) {
			t.Fatalf("accepted body %q", body)
		}
		if _, err := streams.ParseCoord(w.coord); err != nil || w.method == "" || w.path == "" {
			t.Fatalf("accepted write %+v: %v", w, err)
		}
		if w.method == "POST" {
			checkForwarded(t, w.addr.Op, body, w.body)
		}
	})
}
