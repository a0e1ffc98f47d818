package intake

import (
	"testing"

	"github.com/jetbox-dev/jetbox/streams"
)

// Writes to one memory wait for each other in one lane whatever the
// spelling of its coord: the memory API keys memories by the values.
func TestOneMemoryOneLaneWhateverTheCoordSpelling(t *testing.T) {
	same := []string{"1,2,3", "1.0,2.0,3.0", " 1 , 2.00 , 3e0 ", "+1,2,0.3e1"}
	want := ""
	for _, coord := range same {
		w := &Write{Addr: mustAddr(t, "memory.acme.sync.delete")}
		if err := w.decodeBody([]byte(`{"coord":"` + coord + `"}`)); err != nil {
			t.Fatalf("%q: %v", coord, err)
		}
		if want == "" {
			want = w.Memory
		}
		if w.Memory != want {
			t.Errorf("coord %q is memory %q, %q is %q", coord, w.Memory, same[0], want)
		}
	}
	w := &Write{Addr: mustAddr(t, "memory.acme.sync.delete")}
	if err := w.decodeBody([]byte(`{"coord":"-0,0,0"}`)); err != nil || w.Memory != "0,0,0" {
		t.Errorf("-0,0,0 is memory %q (%v), want 0,0,0", w.Memory, err)
	}
	if w2 := (&Write{Addr: mustAddr(t, "memory.acme.sync.delete")}); w2.decodeBody([]byte(`{"coord":"1,2,4"}`)) != nil || w2.Memory == want {
		t.Errorf("1,2,4 shares a lane with 1,2,3")
	}
}

func mustAddr(t *testing.T, subject string) streams.Address {
	t.Helper()
	a, err := streams.ParseSubject(subject)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
