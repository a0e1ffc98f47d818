package intake

import "testing"

// BenchmarkKeyCheck is the duplicate and case-variant key check on its
// own: what the single pass does with each top-level key of a store as the
// Go producer writes it.
func BenchmarkKeyCheck(b *testing.B) {
	keys := [][]byte{[]byte(`"coord"`), []byte(`"payload"`), []byte(`"memory_type"`)}
	value := []byte(`"x"`)
	b.ReportAllocs()
	for b.Loop() {
		var body scannedBody
		for _, k := range keys {
			body.key(k, value)
		}
		if body.keyErr != nil {
			b.Fatal(body.keyErr)
		}
	}
}
