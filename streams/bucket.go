package streams

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// ReadBucket reads the latest value of every key of a KV bucket in one
// pass (deleted keys left out). A bucket that does not exist is
// jetstream.ErrBucketNotFound.
func ReadBucket(ctx context.Context, js jetstream.JetStream, bucket string) ([]jetstream.KeyValueEntry, error) {
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return nil, err
	}
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, err
	}
	defer w.Stop()
	var out []jetstream.KeyValueEntry
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("watch of bucket %s ended early", bucket)
			}
			if e == nil { // every key read
				return out, nil
			}
			out = append(out, e)
		}
	}
}
