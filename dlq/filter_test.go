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
	} {
		if _, err := f.subject(); !errors.Is(err, ErrBadFilter) {
			t.Errorf("%+v: %v, want ErrBadFilter", f, err)
		}
	}
}
