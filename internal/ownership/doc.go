// Package ownership gives each partition of the outbox one owner at a time
// among the running workers, and hands a partition over without reordering
// its writes. The delivery policy (package consumer) plugs in through
// Hooks, and sees neither members, pins nor the hand-back order.
//
// The API has the shape of a partitioned consumer group:
//   - Members joins the members bucket, watches the live members while it
//     heartbeats, and leaves;
//   - Assign is the partitions of a mode a member owns among given members,
//     the same whichever member computes it (balanced rendezvous hashing);
//   - Rebalance takes the partitions assigned to this worker, with
//     Partitions.Take, after releasing those it no longer has; each write of
//     a taken Partition goes to Hooks.Start, in stream order;
//   - Partition.HandBack gives a write back at release; Partition.Release
//     and ReleaseAll let go.
//
// The contract (docs/TOPOLOGY.md, "One owner per partition"):
//
// One owner at a time. Every worker derives the same assignment from the
// live members and pulls only its partitions. The partition consumers'
// pinned priority group (streams.OwnerGroup) is a second lock: while two
// workers' views of the members differ, the server still delivers to one
// of them, and a new owner's pulls wait until the previous owner unpins or
// its pin times out.
//
// Gather before starting. A new owner starts nothing until every write
// pending on the consumer (NumAckPending) has been delivered to it,
// counting distinct stream sequences; then Hooks.Gathered runs, the
// partition is Sure, and the writes start in stream order. A write
// delivered again while it is held is the same write: it neither counts
// twice nor starts twice. A write delivered more than once may since have
// been acked by the worker it was first delivered to: before the count is
// trusted, the stream leader is asked about each such write (AckedCheck),
// the acked ones are dropped, and the count is taken again. After the
// connection reconnects, the partition gathers again the same way, since
// a write delivered while it was down was lost on the way. A partition is
// also Sure once the pin's time-out and an ack wait have passed, by when
// the previous owner has let go or lost everything it held.
//
// Held, not put back. The owner holds every write it was delivered until
// the write's run calls done, which may be after run has returned and in
// another goroutine, and every third of the ack wait tells the server
// that all of them are in progress, lowest sequence first.
//
// Handed back in order. Release stops pulling, takes in what was on its
// way, waits for the running writes and for what runs under Partition.Go,
// then gives the handed-back writes back in sequence order (NakWithDelay
// while a write's notBefore is ahead, Nak otherwise), flushes, and unpins
// the consumer, only if the pin is its own.
package ownership
