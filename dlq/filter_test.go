package dlq

import (
	"errors"
	"testing"
)

func TestFilterSubject(t *testing.T) {
	cases := []struct {
		f    Filter
		want string
	}{
		{Filter{}, "memory_dlq.>"},
		{Filter{Tenant: "acme"}, "memory_dlq.acme.>"},
		{Filter{Tenant: "acme.eu"}, "memory_dlq.acme~2Eeu.>"},
		{Filter{Subject: "memory.*.sync.store"}, "memory_dlq.*.sync.store"},
		{Filter{Tenant: "acme", Subject: "memory.*.sync.store"}, "memory_dlq.acme.sync.store"},
		{Filter{Tenant: "acme", Subject: "memory.acme.*.store"}, "memory_dlq.acme.*.store"},
		{Filter{Tenant: "acme", Subject: "memory.>"}, "memory_dlq.acme.>"},
		{Filter{Subject: "memory.>"}, "memory_dlq.>"},
		{Filter{Subject: "memory.sync.3.acme.store"}, "memory_dlq.acme.sync.store"},
		{Filter{Tenant: "acme", Subject: "memory.sync.12.*.store"}, "memory_dlq.acme.sync.store"},
		// As an earlier jetbox stored it, partition last.
		{Filter{Subject: "memory.acme.sync.store.3"}, "memory_dlq.acme.sync.store"},
		{Filter{Mode: "sync"}, "memory_dlq.*.sync.*"},
		{Filter{Op: "link"}, "memory_dlq.*.*.link"},
		{Filter{Tenant: "acme", Mode: "fast_ack", Op: "delete"}, "memory_dlq.acme.fast_ack.delete"},
		{Filter{Tenant: "acme", Subject: "memory.acme.>", Op: "link"}, "memory_dlq.acme.*.link"},
		{Filter{Subject: "memory.*.sync.>", Op: "store"}, "memory_dlq.*.sync.store"},
		{Filter{Subject: "memory.*.sync.store", Mode: "sync"}, "memory_dlq.*.sync.store"},
	}
	for _, c := range cases {
		got, err := c.f.subject()
		if err != nil || got != c.want {
			t.Errorf("%+v: %q %v, want %q", c.f, got, err, c.want)
		}
	}
	for _, f := range []Filter{
		{Tenant: "acme", Subject: "memory.other.sync.store"},
		{Subject: "elsewhere.acme.sync.store"},
		{Tenant: "bad\x01tenant"},
		{Subject: "memory.*.sync.store", Mode: "background"},
		{Subject: "memory.acme", Op: "store"},
	} {
		if _, err := f.subject(); !errors.Is(err, ErrBadFilter) {
			t.Errorf("%+v: %v, want ErrBadFilter", f, err)
		}
	}
}

func TestParseSeqRanges(t *testing.T) {
	rs, err := ParseSeqRanges("3, 7-9,20-")
	if err != nil {
		t.Fatal(err)
	}
	for seq, want := range map[uint64]bool{1: false, 3: true, 4: false, 7: true, 9: true, 10: false, 19: false, 20: true, 1 << 40: true} {
		if rs.Contains(seq) != want {
			t.Errorf("%v contains %d: %v, want %v", rs, seq, !want, want)
		}
	}
	if first, last := rs.bounds(); first != 3 || last != 0 {
		t.Errorf("bounds %d-%d, want 3 and no upper end", first, last)
	}
	if first, last := (SeqRanges{{From: 5, To: 6}, {From: 1, To: 2}}).bounds(); first != 1 || last != 6 {
		t.Errorf("bounds %d-%d, want 1-6", first, last)
	}
	upTo, err := ParseSeqRanges("-4")
	if err != nil || !upTo.Contains(1) || !upTo.Contains(4) || upTo.Contains(5) {
		t.Errorf("-4: %v %v", upTo, err)
	}
	for _, bad := range []string{"", "0", "x", "9-7", "-", "1-2-3", "5,"} {
		if _, err := ParseSeqRanges(bad); !errors.Is(err, ErrBadFilter) {
			t.Errorf("%q: %v, want ErrBadFilter", bad, err)
		}
	}
}

func TestParseClasses(t *testing.T) {
	got, err := ParseClasses("bad_input,exhausted")
	if err != nil || len(got) != 2 || got[0] != "bad_input" || got[1] != "exhausted" {
		t.Fatalf("%v %v", got, err)
	}
	if _, err := ParseClasses("broken"); !errors.Is(err, ErrBadFilter) {
		t.Fatalf("broken: %v, want ErrBadFilter", err)
	}
}
