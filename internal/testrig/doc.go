// Package testrig is one jetbox on loopback, for the tests, the benchmark
// and the scenarios runner: the NATS side (one embedded nats-server or a
// 3-node cluster), the outbox provisioned from a streams.Config, the
// development memory API on a random 127.0.0.1 port with its data in a
// temporary directory, workers, producers and the waits on what the memory
// API applied. Each user keeps only what is its own: its worker settings,
// its recorder in front of the memory API, its measurements.
//
// Two entries, one per kind of user:
//
//   - Start (rig.go) for a test: everything is stopped and removed when the
//     test ends, and a failure fails the test.
//   - StartEnv (env.go) for a program (cmd/bench, cmd/scenarios): errors are
//     returned, Close stops everything, and workers are 'jetbox run'
//     processes (process.go).
//
// Both serve the memory API through OpenMemoryAPI (memoryapi.go).
//
// The rig starts an in-process worker through a constructor the caller
// passes (Rig.StartWorker), and knows a worker only as the Worker
// interface: Run and Ready. It never imports package consumer, so that
// consumer's own tests, which are in package consumer, can use it too;
// each caller builds its worker with the consumer.Config it needs.
package testrig
