// Package consumer is the worker side of jetbox: it takes the writes of
// the outbox partitions this worker owns, applies each to the memory API
// in its memory's stream order, and decides for each to ack, retry, park
// or dead-letter it. A write is acked only after the memory API applied it
// (2xx), after it was stored in the dead-letter stream, or after it was
// moved to its tenant's parking stream; until then it is held, never put
// back on the stream while this worker owns its partition.
//
// # The life of a write
//
// The policy is group.handle, attempts, attempt and apply (worker.go),
// with parking in parking.go and replay in replayer.go; everything else is
// a call into a package that owns one mechanism.
//
//  1. Intake. internal/ownership pulls each owned partition and, once the
//     partition is gathered (every write pending on it has reached this
//     worker), calls group.start for each write in stream order. It holds
//     the write (InProgress every third of the ack wait) until its
//     handling calls done (step 10), which may be after handle's goroutine
//     has ended.
//  2. Decode. group.prepare decodes the message with consumer/internal/intake:
//     subject, headers, body, the same-tenant checks. A write that cannot be
//     applied is dead-lettered as bad_input with no attempt (dlq builds the
//     letter), and acked.
//  3. Lane. The write takes its place in its memory's lane
//     (consumer/internal/lanes: tenant and coordinate values), in delivery
//     order, before its goroutine starts; handle waits until it is the
//     lowest sequence held for its memory.
//  4. Parking check. If the tenant is parked, the write moves to its
//     parking subject and is acked in the outbox (parking.divert).
//  5. Gate. While the memory API refuses the worker itself (401, 403, 404),
//     every write waits (consumer/internal/misconfig); none is dead-lettered.
//  6. Slot. The write waits for a memory API slot: sync before fast_ack
//     before background, tenants of a group in turn (consumer/internal/fair).
//     Unless it is the one waiting on the slots for the queue, it waits as
//     data in the queue (fair.Slots.AcquireOrQueue) and its goroutine ends;
//     when its turn comes, group.attempts goes on with it in the goroutine
//     of the write that gave the slot back as it finished (step 10), or in
//     a new one.
//  7. Breaker. The tenant's breaker (consumer/internal/breakers) lets the
//     attempt through, or defers it: then the tenant is parked and the write
//     moved aside (step 4's path), holding nothing its neighbours need.
//  8. Call. consumer/internal/memclient sends the request internal/sfmapi
//     describes and classifies the answer: applied, transient, permanent.
//  9. Outcome. Applied: reply to Soma-Reply-To, ack, forget the attempts.
//     Permanent: dead-letter. Transient: count the attempt (MEMORY_ATTEMPTS,
//     shared by workers), wait a backoff (at least Retry-After, and a whole
//     request timeout after an attempt that got no answer, which the memory
//     API may still apply) and go back to step 4; past the budget,
//     dead-letter as exhausted.
//  10. Leave. The write gives its slot back, straight to the next write
//     waiting for one if any, leaves its lane, so that the next write to
//     its memory runs, and calls done. Its goroutine then goes on with the
//     write it gave the slot to (fair.Run). If the partition is released
//     first, a write not running is handed back
//     (ownership.Partition.HandBack), in stream order, to the next owner,
//     and calls done.
//
// A parked tenant's writes are replayed by a replayer of the partition's
// owner (replayer.go), through steps 5 to 9: once the partition is Sure it
// gathers every write pending on the tenant's parked consumer, as a new
// owner gathers a partition, then runs them in lanes, different memories
// at once and each memory's in parking order, as many as the breaker lets
// out (one while it is not closed, up to streams.ParkedMaxAckPending). It
// holds each until it is settled and hands back in order when the
// partition is released. Once the parking lot is empty the tenant is
// unparked under the lock that moves writes there, so none is left behind.
//
// # Goroutines
//
//   - Worker.Run: the ownership loop (rebalancing on every view of the
//     members) and, beside it, the members' heartbeat and watch, the
//     parking bucket watch (consumer/internal/parkwatch), the stray
//     consumer's loop (stray.go), the idle-breaker evictor and the status
//     responder;
//   - per owned partition: its pull loop and its keeper (internal/ownership);
//   - per held write, while it waits for its lane, is attempted or waits
//     for a retry: a goroutine, the one handle starts in or the one it goes
//     on in after step 6. A write waiting for a slot has none: it is a
//     record in the fair slots' queue, except the one waiting on the slots
//     for the queue. Its turn come, it goes on in the goroutine of the
//     write that gave the slot back as it finished, once that write has
//     called done; in a new goroutine when the slot comes from a write that
//     goes on (to be parked or to wait for a retry), from a replayer or
//     from the one waiting for the queue, and when it becomes that one. If
//     its partition is released first, it is handed back in the goroutine
//     context.AfterFunc starts for its context;
//   - per parked tenant of an owned partition: a replayer, its keeper
//     (InProgress every third of the ack wait) and one goroutine per write
//     it runs.
//
// # Locks
//
// None is held across a network call except parkedTenant.mu, which a move
// to the parking stream holds shared and parking or unparking holds alone
// (that is its purpose: no write is moved while the tenant changes state).
// The others are each mechanism's own: the lanes' lock, the fair slots'
// lock, each breaker's (gobreaker), the gate's, parking.mu over the parked
// tenants, the parking watch's, and the partitions' in internal/ownership.
//
// # Words
//
//   - write: one outbox message, a store, a delete or a link.
//   - memory: what a write touches, a tenant and a coordinate's values.
//   - lane: a memory's held writes, applied one at a time in stream order.
//   - partition: a slice of the outbox by tenant, owned by one worker at a
//     time; gather: a new owner waits until every write pending on it has
//     reached it, then starts them in stream order.
//   - hold / hand back: keep a pulled write unacked while it waits / give
//     it back to the stream (Nak) in stream order when the partition is
//     released.
//   - settle: a write is settled once it is acked, having been applied,
//     dead-lettered or parked.
//   - park / replay / unpark: move a failing tenant's writes to its parking
//     stream / apply them from there in order / end the parking once the
//     lot is empty.
//   - defer: an attempt the breaker did not let through; it costs no
//     attempt from the budget.
//   - dead letter: a write stored in MEMORY_DLQ with its class and reason.
package consumer
