package streams_test

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetbox-dev/jetbox/internal/natstest"
	"github.com/jetbox-dev/jetbox/streams"
)

// A parked tenant's writes wait on disk for as long as its memory API is
// down. The parking stream compresses its full blocks, so a large parked
// backlog takes a fraction of its size on disk.
func TestParkedWritesAreCompressedOnDisk(t *testing.T) {
	cfg := streams.DefaultConfig()
	s := natstest.Start(t)
	_, js := s.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	top, err := streams.Provision(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	subject := streams.ParkedSubjectPrefix + ".acme.background.store"
	first := parkedBody(0)
	ack, err := js.Publish(ctx, subject, first)
	if err != nil {
		t.Fatal(err)
	}
	// About 30 MB of parked writes: several full blocks.
	const n = 60000
	for i := 1; i < n; i++ {
		if _, err := js.PublishAsync(subject, parkedBody(i)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		t.Fatal("parked writes not acknowledged")
	}
	info, err := top.Parking.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != n {
		t.Fatalf("parking stream holds %d writes, want %d", info.State.Msgs, n)
	}
	dir := filepath.Join(s.StoreDir, "jetstream", "$G", "streams", cfg.ParkingStream, "msgs")
	deadline := time.Now().Add(20 * time.Second)
	for {
		onDisk := blockBytes(t, dir)
		if onDisk*2 < info.State.Bytes {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes of parked writes take %d bytes on disk, want less than half", info.State.Bytes, onDisk)
		}
		time.Sleep(100 * time.Millisecond)
	}
	assertStored(ctx, t, top.Parking, ack.Sequence, first)
}

// A parking stream made before compression is switched over in place by
// Provision, keeping its writes (the server compresses the blocks it fills
// after its next restart).
func TestProvisionCompressesAnOlderParkingStream(t *testing.T) {
	cfg := streams.DefaultConfig()
	s := natstest.Start(t)
	_, js := s.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	older := cfg.ParkingConfig()
	older.Compression = jetstream.NoCompression
	if _, err := js.CreateStream(ctx, older); err != nil {
		t.Fatal(err)
	}
	body := parkedBody(1)
	ack, err := js.Publish(ctx, streams.ParkedSubjectPrefix+".acme.background.store", body)
	if err != nil {
		t.Fatal(err)
	}
	top, err := streams.Provision(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := top.Parking.CachedInfo().Config.Compression; got != jetstream.S2Compression {
		t.Fatalf("parking stream compression %v after Provision, want s2", got)
	}
	assertStored(ctx, t, top.Parking, ack.Sequence, body)
}

// parkedBody is a write's body as a service would send it: JSON, about 500
// bytes.
func parkedBody(i int) []byte {
	text := strings.Repeat(fmt.Sprintf("note %d about the user's preferences and recent conversation; ", i%97), 7)
	return fmt.Appendf(nil, `{"coord":"%d,2,3","memory_type":"episodic","payload":{"text":%q,"i":%d}}`, i, text, i)
}

// blockBytes is the size of the message block files in dir.
func blockBytes(t *testing.T, dir string) uint64 {
	t.Helper()
	var total uint64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".blk") {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return nil // replaced while compressed
		}
		total += uint64(fi.Size())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return total
}

// Provision leaves the parked consumers as it finds them. During a rolling
// upgrade an older worker's replayer may be reading one, set to let one
// write out at a time, right after taking over from a replayer that died
// holding several: it gathers nothing and counts on that setting to be
// delivered the dead one's writes, when they come back, before any later
// write. A replayer gives its consumer the current configuration itself,
// when it starts.
func TestProvisionLeavesParkedConsumersAlone(t *testing.T) {
	cfg := streams.DefaultConfig()
	s := natstest.Start(t)
	_, js := s.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := streams.Provision(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	older := cfg.ParkedConsumerConfig(streams.ModeFastAck, "acme")
	older.MaxAckPending = 1
	if _, err := js.CreateOrUpdateConsumer(ctx, cfg.ParkingStream, older); err != nil {
		t.Fatal(err)
	}
	if _, err := streams.Provision(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	c, err := js.Consumer(ctx, cfg.ParkingStream, older.Durable)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.CachedInfo().Config.MaxAckPending; got != 1 {
		t.Fatalf("parked consumer's MaxAckPending is %d after Provision, want the 1 it was set to", got)
	}
}
