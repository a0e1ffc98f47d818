package streams_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/jetbox-dev/jetbox/streams"
	"github.com/jetbox-dev/jetbox/tenancy"
)

func TestAddressSubjectRoundTrip(t *testing.T) {
	tests := []struct {
		tenant  string
		mode    streams.Mode
		op      streams.Op
		subject string
	}{
		{"acme", streams.ModeSync, streams.OpStore, "memory.acme.sync.store"},
		{"sandbox-tenant", streams.ModeFastAck, streams.OpDelete, "memory.sandbox-tenant.fast_ack.delete"},
		{"a.b", streams.ModeBackground, streams.OpLink, "memory.a~2Eb.background.link"},
		{"my tenant", streams.ModeSync, streams.OpStore, "memory.my~20tenant.sync.store"},
		{"*", streams.ModeSync, streams.OpStore, "memory.~2A.sync.store"},
		{">", streams.ModeSync, streams.OpStore, "memory.~3E.sync.store"},
		{"~", streams.ModeSync, streams.OpStore, "memory.~7E.sync.store"},
		{"東京", streams.ModeFastAck, streams.OpStore, "memory.~E6~9D~B1~E4~BA~AC.fast_ack.store"},
		{"memory.x.sync.store", streams.ModeBackground, streams.OpDelete, "memory.memory~2Ex~2Esync~2Estore.background.delete"},
	}
	for _, tt := range tests {
		t.Run(tt.subject, func(t *testing.T) {
			addr, err := streams.NewAddress(tt.tenant, tt.mode, tt.op)
			if err != nil {
				t.Fatalf("NewAddress(%q, %s, %s): %v", tt.tenant, tt.mode, tt.op, err)
			}
			if got := addr.Subject(); got != tt.subject {
				t.Fatalf("Subject() = %q, want %q", got, tt.subject)
			}
			if !server.IsValidSubject(addr.Subject()) {
				t.Fatalf("%q is not a valid NATS subject", addr.Subject())
			}
			if !server.SubjectMatchesFilter(addr.Subject(), streams.ModeFilter(tt.mode)) {
				t.Fatalf("%q is outside its group's filter %q", addr.Subject(), streams.ModeFilter(tt.mode))
			}
			parsed, err := streams.ParseSubject(addr.Subject())
			if err != nil {
				t.Fatalf("ParseSubject(%q): %v", addr.Subject(), err)
			}
			if parsed != addr {
				t.Fatalf("ParseSubject(%q) = %+v, want %+v", addr.Subject(), parsed, addr)
			}
			if parsed.Tenant != tt.tenant {
				t.Fatalf("parsed tenant %q, want %q", parsed.Tenant, tt.tenant)
			}
			wantDLQ := "memory_dlq" + strings.TrimPrefix(tt.subject, "memory")
			if got := addr.DLQSubject(); got != wantDLQ {
				t.Fatalf("DLQSubject() = %q, want %q", got, wantDLQ)
			}
			if got := streams.DLQSubjectFor(addr.Subject()); got != addr.DLQSubject() {
				t.Fatalf("DLQSubjectFor(%q) = %q, want %q", addr.Subject(), got, addr.DLQSubject())
			}
		})
	}
}

func TestNewAddressRejects(t *testing.T) {
	tests := []struct {
		name   string
		tenant string
		mode   streams.Mode
		op     streams.Op
		want   error
	}{
		{"empty tenant", "", streams.ModeSync, streams.OpStore, tenancy.ErrInvalidTenant},
		{"control char tenant", "a\nb", streams.ModeSync, streams.OpStore, tenancy.ErrInvalidTenant},
		{"long tenant", strings.Repeat("a", 129), streams.ModeSync, streams.OpStore, tenancy.ErrInvalidTenant},
		{"unknown mode", "acme", streams.Mode("bogus"), streams.OpStore, streams.ErrUnknownMode},
		{"empty mode", "acme", "", streams.OpStore, streams.ErrUnknownMode},
		{"mode in wrong case", "acme", streams.Mode("SYNC"), streams.OpStore, streams.ErrUnknownMode},
		{"unknown op", "acme", streams.ModeSync, streams.Op("update"), streams.ErrUnknownOp},
		{"empty op", "acme", streams.ModeSync, "", streams.ErrUnknownOp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, err := streams.NewAddress(tt.tenant, tt.mode, tt.op)
			if !errors.Is(err, tt.want) {
				t.Fatalf("NewAddress(%q, %q, %q) error = %v, want %v", tt.tenant, tt.mode, tt.op, err, tt.want)
			}
			if addr != (streams.Address{}) {
				t.Fatalf("NewAddress returned %+v alongside an error", addr)
			}
		})
	}
}

func TestParseSubjectRejects(t *testing.T) {
	tests := []struct {
		name    string
		subject string
		also    error // a second sentinel the error must match, nil for none
	}{
		{"empty", "", nil},
		{"wrong prefix", "memories.acme.sync.store", nil},
		{"dead-letter prefix", "memory_dlq.acme.sync.store", nil},
		{"prefix in wrong case", "MEMORY.acme.sync.store", nil},
		{"3 tokens", "memory.acme.sync", nil},
		{"5 tokens", "memory.acme.sync.store.extra", nil},
		{"raw dot in tenant makes 5 tokens", "memory.a.b.sync.store", nil},
		{"empty tenant token", "memory..sync.store", tenancy.ErrInvalidTenant},
		{"lower-case escape", "memory.a~2eb.sync.store", tenancy.ErrInvalidTenant},
		{"needless escape", "memory.~41.sync.store", tenancy.ErrInvalidTenant},
		{"trailing tilde", "memory.acme~.sync.store", tenancy.ErrInvalidTenant},
		{"wildcard tenant", "memory.*.sync.store", tenancy.ErrInvalidTenant},
		{"full wildcard tenant", "memory.>.sync.store", tenancy.ErrInvalidTenant},
		{"space in tenant", "memory.a b.sync.store", tenancy.ErrInvalidTenant},
		{"tenant decodes to control char", "memory.~0A.sync.store", tenancy.ErrInvalidTenant},
		{"unknown mode", "memory.acme.bogus.store", streams.ErrUnknownMode},
		{"empty mode", "memory.acme..store", streams.ErrUnknownMode},
		{"mode wildcard", "memory.acme.*.store", streams.ErrUnknownMode},
		{"unknown op", "memory.acme.sync.update", streams.ErrUnknownOp},
		{"empty op", "memory.acme.sync.", streams.ErrUnknownOp},
		{"op wildcard", "memory.acme.sync.>", streams.ErrUnknownOp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, err := streams.ParseSubject(tt.subject)
			if !errors.Is(err, streams.ErrBadSubject) {
				t.Fatalf("ParseSubject(%q) error = %v, want ErrBadSubject", tt.subject, err)
			}
			if tt.also != nil && !errors.Is(err, tt.also) {
				t.Fatalf("ParseSubject(%q) error = %v, want it to match %v too", tt.subject, err, tt.also)
			}
			var se *streams.SubjectError
			if !errors.As(err, &se) || se.Subject != tt.subject {
				t.Fatalf("ParseSubject(%q) error %v is not a *SubjectError naming the subject", tt.subject, err)
			}
			if addr != (streams.Address{}) {
				t.Fatalf("ParseSubject returned %+v alongside an error", addr)
			}
		})
	}
}

func TestParseModeAndOpAcceptEveryListedValue(t *testing.T) {
	for _, m := range streams.Modes {
		if got, err := streams.ParseMode(string(m)); err != nil || got != m {
			t.Errorf("ParseMode(%q) = %q, %v", m, got, err)
		}
	}
	for _, o := range streams.Ops {
		if got, err := streams.ParseOp(string(o)); err != nil || got != o {
			t.Errorf("ParseOp(%q) = %q, %v", o, got, err)
		}
	}
	want := []streams.Mode{"sync", "fast_ack", "background"}
	if len(streams.Modes) != len(want) {
		t.Fatalf("Modes = %v, want %v", streams.Modes, want)
	}
	for i := range want {
		if streams.Modes[i] != want[i] {
			t.Fatalf("Modes = %v, want %v in priority order", streams.Modes, want)
		}
	}
}

func TestDLQSubjectForInvalidSubjects(t *testing.T) {
	// A write that cannot be parsed is still dead-lettered under the same
	// tokens, inside the dead-letter stream's memory_dlq.> subjects.
	tests := map[string]string{
		"memory.acme.sync.store.extra": "memory_dlq.acme.sync.store.extra",
		"memory.acme.bogus.store":      "memory_dlq.acme.bogus.store",
		"memory.~41.sync.store":        "memory_dlq.~41.sync.store",
	}
	for in, want := range tests {
		got := streams.DLQSubjectFor(in)
		if got != want {
			t.Errorf("DLQSubjectFor(%q) = %q, want %q", in, got, want)
		}
		if !server.SubjectMatchesFilter(got, streams.DLQSubjectPrefix+".>") {
			t.Errorf("DLQSubjectFor(%q) = %q is outside memory_dlq.>", in, got)
		}
	}
}

func TestModeFilter(t *testing.T) {
	want := map[streams.Mode]string{
		streams.ModeSync:       "memory.*.sync.>",
		streams.ModeFastAck:    "memory.*.fast_ack.>",
		streams.ModeBackground: "memory.*.background.>",
	}
	for mode, filter := range want {
		if got := streams.ModeFilter(mode); got != filter {
			t.Errorf("ModeFilter(%s) = %q, want %q", mode, got, filter)
		}
	}
	// Each write is seen by exactly one group: the filters of a work-queue
	// stream's consumers must not overlap.
	for _, m := range streams.Modes {
		addr, err := streams.NewAddress("a.b", m, streams.OpStore)
		if err != nil {
			t.Fatal(err)
		}
		for _, other := range streams.Modes {
			matches := server.SubjectMatchesFilter(addr.Subject(), streams.ModeFilter(other))
			if matches != (m == other) {
				t.Errorf("%q matches %s filter %q: %v", addr.Subject(), other, streams.ModeFilter(other), matches)
			}
			if m != other && server.SubjectsCollide(streams.ModeFilter(m), streams.ModeFilter(other)) {
				t.Errorf("filters of %s and %s overlap", m, other)
			}
		}
	}
}

func TestTenantDLQFilter(t *testing.T) {
	got, err := streams.TenantDLQFilter("a.b")
	if err != nil {
		t.Fatal(err)
	}
	if got != "memory_dlq.a~2Eb.>" {
		t.Fatalf("TenantDLQFilter(a.b) = %q", got)
	}
	own, _ := streams.NewAddress("a.b", streams.ModeSync, streams.OpStore)
	other, _ := streams.NewAddress("a", streams.ModeSync, streams.OpStore)
	if !server.SubjectMatchesFilter(own.DLQSubject(), got) {
		t.Errorf("%q does not select the tenant's own dead letter %q", got, own.DLQSubject())
	}
	if server.SubjectMatchesFilter(other.DLQSubject(), got) {
		t.Errorf("%q selects another tenant's dead letter %q", got, other.DLQSubject())
	}
	if _, err := streams.TenantDLQFilter(""); !errors.Is(err, tenancy.ErrInvalidTenant) {
		t.Errorf("TenantDLQFilter(\"\") error = %v, want ErrInvalidTenant", err)
	}
}

func FuzzParseSubject(f *testing.F) {
	for _, s := range []string{
		"memory.acme.sync.store", "memory.a~2Eb.background.link", "memory.~E6~9D~B1.fast_ack.delete",
		"memory.~41.sync.store", "memory.a~2eb.sync.store", "memory..sync.store", "memory.acme.sync",
		"memory.acme.sync.store.x", "memory_dlq.acme.sync.store", "memory.acme.bogus.store",
		"memory.acme.sync.bogus", "memory.*.sync.>", "", ".", "....", "memory.~.sync.store",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, subject string) {
		addr, err := streams.ParseSubject(subject)
		if err != nil {
			if !errors.Is(err, streams.ErrBadSubject) {
				t.Fatalf("ParseSubject(%q) error %v does not wrap ErrBadSubject", subject, err)
			}
			return
		}
		if got := addr.Subject(); got != subject {
			t.Fatalf("ParseSubject(%q).Subject() = %q", subject, got)
		}
		again, err := streams.NewAddress(addr.Tenant, addr.Mode, addr.Op)
		if err != nil {
			t.Fatalf("NewAddress from parsed %+v: %v", addr, err)
		}
		if again != addr {
			t.Fatalf("NewAddress(%q, %s, %s) = %+v, ParseSubject gave %+v", addr.Tenant, addr.Mode, addr.Op, again, addr)
		}
	})
}
