package streams_test

import (
	"errors"
	"strconv"
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
			if !server.SubjectMatchesFilter(addr.Subject(), streams.ModeSubject(tt.mode)) {
				t.Fatalf("%q is outside its mode's stream subject %q", addr.Subject(), streams.ModeSubject(tt.mode))
			}
			if addr.Partition != -1 {
				t.Fatalf("NewAddress gave partition %d, want -1 (a publish subject)", addr.Partition)
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

			// The subject the outbox stores the write under: the mode and
			// the partition first, then the tenant and the op.
			stored := streams.StoredSubject(addr, 7)
			if want := "memory." + string(tt.mode) + ".7." + addr.Token + "." + string(tt.op); stored != want {
				t.Fatalf("StoredSubject(%+v, 7) = %q, want %q", addr, stored, want)
			}
			if !server.IsValidSubject(stored) {
				t.Fatalf("stored %q is not a valid NATS subject", stored)
			}
			if !server.SubjectMatchesFilter(stored, streams.PartitionFilter(tt.mode, 7)) {
				t.Fatalf("stored %q is outside its partition's filter %q", stored, streams.PartitionFilter(tt.mode, 7))
			}
			parsed, err = streams.ParseSubject(stored)
			if err != nil {
				t.Fatalf("ParseSubject(%q): %v", stored, err)
			}
			want := addr
			want.Partition = 7
			if parsed != want {
				t.Fatalf("ParseSubject(%q) = %+v, want %+v", stored, parsed, want)
			}
			if parsed.Subject() != tt.subject {
				t.Fatalf("stored address's Subject() = %q, want the publish subject %q", parsed.Subject(), tt.subject)
			}
			if got := streams.PublishSubject(stored); got != tt.subject {
				t.Fatalf("PublishSubject(%q) = %q, want %q", stored, got, tt.subject)
			}
			if got := streams.DLQSubjectFor(stored); got != wantDLQ {
				t.Fatalf("DLQSubjectFor(%q) = %q, want %q", stored, got, wantDLQ)
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
		{"5 tokens, an extra one after the op", "memory.acme.sync.store.extra", nil},
		{"stored, partition not a number", "memory.sync.x.acme.store", nil},
		{"stored in the earlier layout, partition last", "memory.acme.sync.store.3", nil},
		{"partition with leading zeros", "memory.sync.007.acme.store", nil},
		{"negative partition", "memory.sync.-1.acme.store", nil},
		{"signed partition", "memory.sync.+1.acme.store", nil},
		{"partition beyond MaxPartitions", "memory.sync.1000.acme.store", nil},
		{"empty partition", "memory.sync..acme.store", nil},
		{"partition wildcard", "memory.sync.*.acme.store", nil},
		{"6 tokens", "memory.sync.1.acme.store.2", nil},
		{"6 tokens, earlier layout", "memory.acme.sync.store.1.2", nil},
		{"stored, unknown op", "memory.sync.3.acme.bogus", streams.ErrUnknownOp},
		{"stored, bad tenant", "memory.sync.3.~41.store", tenancy.ErrInvalidTenant},
		{"stored, unknown mode", "memory.bogus.3.acme.store", streams.ErrUnknownMode},
		{"stored, wildcard tenant", "memory.sync.3.*.store", tenancy.ErrInvalidTenant},
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
	// A write that cannot be parsed is still dead-lettered under the
	// tokens it was published with, in the publish subject's order and
	// less its partition, inside the dead-letter stream's memory_dlq.>
	// subjects.
	tests := map[string]string{
		"memory.bogus.3.acme.store":    "memory_dlq.acme.bogus.store",
		"memory.sync.12.~41.store":     "memory_dlq.~41.sync.store",
		"memory.sync.999.acme.bogus":   "memory_dlq.acme.sync.bogus",
		"memory.acme.bogus.store":      "memory_dlq.acme.bogus.store",
		"memory.~41.sync.store":        "memory_dlq.~41.sync.store",
		"memory.acme.sync.store.extra": "memory_dlq.acme.sync.store.extra",
		"memory.sync.x.acme.store":     "memory_dlq.sync.x.acme.store",
		"memory.sync.1.acme.store.2":   "memory_dlq.sync.1.acme.store.2",
		"memory.sync.007.acme.store":   "memory_dlq.sync.007.acme.store",
		// Stored by an earlier jetbox, with the partition last.
		"memory.acme.bogus.store.3":  "memory_dlq.acme.bogus.store",
		"memory.~41.sync.store.12":   "memory_dlq.~41.sync.store",
		"memory.acme.sync.bogus.999": "memory_dlq.acme.sync.bogus",
		"memory.acme.sync.store.1.2": "memory_dlq.acme.sync.store.1.2",
		"memory.acme.sync.store.007": "memory_dlq.acme.sync.store.007",
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

func TestPublishSubjectLeavesOtherSubjectsAlone(t *testing.T) {
	for _, s := range []string{
		"memory.acme.sync.store", "memory.acme.sync.store.x", "memory.acme.sync.store.1.2",
		"memory_dlq.acme.sync.store.3", "other.acme.sync.store.3", "memory.acme.sync.store.0042", "", "3",
		"memory.sync.x.acme.store", "memory.sync.0042.acme.store", "memory.sync.3.acme.store.1",
		"memory_dlq.sync.3.acme.store", "other.sync.3.acme.store", "memory.sync.3.acme", "memory.sync.3",
	} {
		if got := streams.PublishSubject(s); got != s {
			t.Errorf("PublishSubject(%q) = %q, want it unchanged", s, got)
		}
	}
}

func TestModeSubjectAndPartitionFilters(t *testing.T) {
	want := map[streams.Mode]string{
		streams.ModeSync:       "memory.*.sync.*",
		streams.ModeFastAck:    "memory.*.fast_ack.*",
		streams.ModeBackground: "memory.*.background.*",
	}
	for mode, subject := range want {
		if got := streams.ModeSubject(mode); got != subject {
			t.Errorf("ModeSubject(%s) = %q, want %q", mode, got, subject)
		}
	}
	if got := streams.PartitionFilter(streams.ModeSync, 7); got != "memory.sync.7.*.*" {
		t.Errorf("PartitionFilter(sync, 7) = %q, want %q", got, "memory.sync.7.*.*")
	}
	// Each stored write is seen by exactly one consumer: the filters of a
	// work-queue stream's consumers must not overlap, neither two
	// partitions' nor a partition's and the stray consumer's.
	const partitions = 12
	const stray = "memory.*.*.*"
	if got := streams.DefaultConfig().StrayConsumerConfig().FilterSubject; got != stray {
		t.Fatalf("stray consumer filter = %q, want %q", got, stray)
	}
	for _, m := range streams.Modes {
		addr, err := streams.NewAddress("a.b", m, streams.OpStore)
		if err != nil {
			t.Fatal(err)
		}
		for _, other := range streams.Modes {
			if got := server.SubjectMatchesFilter(addr.Subject(), streams.ModeSubject(other)); got != (m == other) {
				t.Errorf("%q matches %s stream subject %q: %v", addr.Subject(), other, streams.ModeSubject(other), got)
			}
		}
		for p := range partitions {
			pf := streams.PartitionFilter(m, p)
			if server.SubjectsCollide(pf, stray) {
				t.Errorf("partition filter %q overlaps the stray filter %q", pf, stray)
			}
			stored := streams.StoredSubject(addr, p)
			if server.SubjectMatchesFilter(stored, stray) {
				t.Errorf("stored %q matches the stray filter %q", stored, stray)
			}
			for _, other := range streams.Modes {
				// Provision counts the writes an earlier jetbox stored
				// (memory.*.<mode>.*.*) and refuses while there are any:
				// a write stored now must never count as one.
				if earlier := "memory.*." + string(other) + ".*.*"; server.SubjectMatchesFilter(stored, earlier) {
					t.Errorf("stored %q matches the earlier layout's %q", stored, earlier)
				}
				for q := range partitions {
					f := streams.PartitionFilter(other, q)
					if got := server.SubjectMatchesFilter(stored, f); got != (m == other && p == q) {
						t.Errorf("%q matches %q: %v", stored, f, got)
					}
					if (m != other || p != q) && server.SubjectsCollide(pf, f) {
						t.Errorf("filters %q and %q overlap", pf, f)
					}
				}
			}
			// A write an earlier jetbox stored, with the partition last,
			// matches no consumer of this layout: Provision must refuse
			// while the outbox holds one.
			earlier := addr.Subject() + "." + strconv.Itoa(p)
			if server.SubjectMatchesFilter(earlier, stray) {
				t.Errorf("earlier-layout %q matches the stray filter %q", earlier, stray)
			}
			for _, other := range streams.Modes {
				for q := range partitions {
					if f := streams.PartitionFilter(other, q); server.SubjectMatchesFilter(earlier, f) {
						t.Errorf("earlier-layout %q matches %q", earlier, f)
					}
				}
			}
		}
		// The unpartitioned layout's consumer overlaps the stray
		// consumer's filter: Provision must remove it before it can
		// create that one.
		if !server.SubjectsCollide("memory.*."+string(m)+".>", stray) {
			t.Errorf("the legacy %s filter does not overlap the stray filter %q", m, stray)
		}
	}
}

func TestPartitionConsumerNames(t *testing.T) {
	for name, want := range map[string]struct {
		mode streams.Mode
		p    int
	}{"sync-007": {streams.ModeSync, 7}, "fast_ack-000": {streams.ModeFastAck, 0}, "background-999": {streams.ModeBackground, 999}} {
		if got := streams.PartitionConsumerName(want.mode, want.p); got != name {
			t.Errorf("PartitionConsumerName(%s, %d) = %q, want %q", want.mode, want.p, got, name)
		}
	}
	seen := map[string]bool{}
	for _, m := range streams.Modes {
		for p := range streams.MaxPartitions {
			name := streams.PartitionConsumerName(m, p)
			if seen[name] {
				t.Fatalf("%s named twice", name)
			}
			seen[name] = true
			if gm, gp, ok := streams.ParsePartitionConsumerName(name); !ok || gm != m || gp != p {
				t.Fatalf("ParsePartitionConsumerName(%q) = %s, %d, %v", name, gm, gp, ok)
			}
		}
	}
	for _, name := range []string{"sync", "fast_ack", "sync-7", "sync-0007", "sync--01", "sync-+01", "sync-abc", "bogus-001", "-001", "sync-001x", ""} {
		if _, _, ok := streams.ParsePartitionConsumerName(name); ok {
			t.Errorf("ParsePartitionConsumerName(%q) accepted it", name)
		}
	}
}

func TestPartitionOfStaysInRange(t *testing.T) {
	for _, partitions := range []int{1, 2, 7, 16, streams.MaxPartitions} {
		for i := range 1000 {
			token := "t" + strconv.Itoa(i)
			if p := streams.PartitionOf(token, partitions); p < 0 || p >= partitions {
				t.Fatalf("PartitionOf(%q, %d) = %d", token, partitions, p)
			}
		}
	}
	if p := streams.PartitionOf("acme", 0); p != 0 {
		t.Fatalf("PartitionOf(acme, 0) = %d, want 0 as the server gives", p)
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
		"memory.acme.sync.store.0", "memory.a~2Eb.fast_ack.link.999", "memory.acme.sync.store.01", "memory.acme.sync.store.-0",
		"memory.sync.0.acme.store", "memory.fast_ack.999.a~2Eb.link", "memory.sync.01.acme.store", "memory.sync.-0.acme.store",
		"memory.sync.x.acme.store", "memory.bogus.3.acme.store", "memory.sync.3.acme.bogus", "memory.sync.3.~41.store",
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
		stored := addr.Subject()
		if addr.Partition >= 0 {
			stored = streams.StoredSubject(addr, addr.Partition)
		}
		if stored != subject {
			t.Fatalf("ParseSubject(%q) = %+v, which writes as %q", subject, addr, stored)
		}
		if got := streams.PublishSubject(subject); got != addr.Subject() {
			t.Fatalf("PublishSubject(%q) = %q, want %q", subject, got, addr.Subject())
		}
		again, err := streams.NewAddress(addr.Tenant, addr.Mode, addr.Op)
		if err != nil {
			t.Fatalf("NewAddress from parsed %+v: %v", addr, err)
		}
		addr.Partition = -1
		if again != addr {
			t.Fatalf("NewAddress(%q, %s, %s) = %+v, ParseSubject gave %+v", addr.Tenant, addr.Mode, addr.Op, again, addr)
		}
	})
}
