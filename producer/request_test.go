package producer

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/jetbox-dev/jetbox/streams"
)

type encoder interface {
	encode(universe string, dst []byte) (string, []byte, error)
}

func TestBodies(t *testing.T) {
	type payload struct {
		Text string `json:"text"`
		N    int    `json:"n"`
	}
	keyCoord := CoordFromKey("real", "user:42")
	for name, c := range map[string]struct {
		req       encoder
		wantCoord string
		want      string
	}{
		"store raw": {
			req:       &StoreRequest{Coord: "1,2,3", Payload: json.RawMessage(` {"a":[1,2]} `), MemoryType: "semantic"},
			wantCoord: "1,2,3",
			want:      `{"coord":"1,2,3","payload":{"a":[1,2]},"memory_type":"semantic"}`,
		},
		"store bytes from key": {
			req:       &StoreRequest{Key: "user:42", Payload: []byte(`{"x":"é\n"}`)},
			wantCoord: keyCoord,
			want:      `{"coord":"` + keyCoord + `","payload":{"x":"é\n"},"memory_type":"episodic"}`,
		},
		"store struct": {
			req:       &StoreRequest{Coord: "0,0,0", Payload: payload{Text: "hi", N: 2}, MemoryType: "semantic"},
			wantCoord: "0,0,0",
			want:      `{"coord":"0,0,0","payload":{"text":"hi","n":2},"memory_type":"semantic"}`,
		},
		"delete": {
			req:       &DeleteRequest{Key: "user:42"},
			wantCoord: keyCoord,
			want:      `{"coord":"` + keyCoord + `"}`,
		},
		"link defaults": {
			req:       &LinkRequest{FromKey: "user:42", ToCoord: "1,2,3"},
			wantCoord: keyCoord,
			want:      `{"from_coord":"` + keyCoord + `","to_coord":"1,2,3","link_type":"related","strength":1.0}`,
		},
		"link": {
			req:       &LinkRequest{FromCoord: "1,2,3", ToKey: "user:42", LinkType: "causes", Strength: ptr(0.25), Metadata: map[string]any{"why": "tea"}},
			wantCoord: "1,2,3",
			want:      `{"from_coord":"1,2,3","to_coord":"` + keyCoord + `","link_type":"causes","strength":0.25,"metadata":{"why":"tea"}}`,
		},
		"link of strength 0": {
			req:       &LinkRequest{FromCoord: "1,2,3", ToCoord: "3,2,1", Strength: ptr(0.0)},
			wantCoord: "1,2,3",
			want:      `{"from_coord":"1,2,3","to_coord":"3,2,1","link_type":"related","strength":0.0}`,
		},
	} {
		coord, body, err := c.req.encode("real", nil)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if coord != c.wantCoord || string(body) != c.want {
			t.Errorf("%s:\ncoord %s body %s\nwant  %s body %s", name, coord, body, c.wantCoord, c.want)
		}
		if !json.Valid(body) {
			t.Errorf("%s: body is not JSON", name)
		}
	}
}

func TestInvalidRequests(t *testing.T) {
	secret := "s3cr3t-payload"
	for name, c := range map[string]struct {
		req   encoder
		field string
	}{
		"no coord no key":     {&StoreRequest{Payload: json.RawMessage(`{}`)}, "coord"},
		"bad coord":           {&StoreRequest{Coord: "1,2", Payload: json.RawMessage(`{}`)}, "coord"},
		"infinite coord":      {&DeleteRequest{Coord: "1,2,inf"}, "coord"},
		"payload array":       {&StoreRequest{Key: "k", Payload: json.RawMessage(`["` + secret + `"]`)}, "payload"},
		"payload string":      {&StoreRequest{Key: "k", Payload: secret}, "payload"},
		"payload nil":         {&StoreRequest{Key: "k"}, "payload"},
		"payload broken":      {&StoreRequest{Key: "k", Payload: []byte(`{"a":"` + secret)}, "payload"},
		"payload unencodable": {&StoreRequest{Key: "k", Payload: map[string]any{"f": math.NaN(), "s": secret}}, "payload"},
		"link no from":        {&LinkRequest{ToKey: "k"}, "from_coord"},
		"link no to":          {&LinkRequest{FromKey: "k"}, "to_coord"},
		"link strength":       {&LinkRequest{FromKey: "k", ToKey: "j", Strength: ptr(math.Inf(1))}, "strength"},
		"link metadata":       {&LinkRequest{FromKey: "k", ToKey: "j", Metadata: []int{1}}, "metadata"},
		"delete no coord":     {&DeleteRequest{}, "coord"},
	} {
		_, _, err := c.req.encode("real", nil)
		var inv *InvalidRequestError
		if !errors.As(err, &inv) || !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("%s: err %v, want InvalidRequestError", name, err)
			continue
		}
		if inv.Field != c.field {
			t.Errorf("%s: field %q, want %q", name, inv.Field, c.field)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: error quotes the payload: %v", name, err)
		}
	}
}

func TestInvalidRequestThroughProducer(t *testing.T) {
	e := newEnv(t, Config{Mode: streams.ModeFastAck})
	ctx := context.Background()
	if _, err := e.p.Store(ctx, StoreRequest{Key: "k", Payload: json.RawMessage(`[]`)}); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("array payload: %v", err)
	}
	if _, err := e.p.Store(ctx, StoreRequest{Key: "k", Payload: json.RawMessage(`{}`)}, WithRequestID("a\r\nNats-Msg-Id: x")); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("header injection: %v", err)
	}
	if _, err := e.p.Store(ctx, StoreRequest{Key: "k", Payload: json.RawMessage(`{}`)}, WithMode("eventually")); !errors.Is(err, streams.ErrUnknownMode) {
		t.Fatalf("unknown mode: %v", err)
	}
	if n := e.count(t); n != 0 {
		t.Fatalf("%d messages, want 0", n)
	}
}

func TestUnknownMemoryTypeIsRefused(t *testing.T) {
	_, _, err := (&StoreRequest{Coord: "0,0,0", Payload: map[string]any{}, MemoryType: "procedural"}).encode(DefaultUniverse, nil)
	var inv *InvalidRequestError
	if !errors.As(err, &inv) || inv.Field != "memory_type" {
		t.Fatalf("got %v, want an InvalidRequestError for memory_type", err)
	}
}

func ptr[T any](v T) *T { return &v }
