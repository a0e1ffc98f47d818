// Package sfmapi is SomaFractalMemory's HTTP contract as jetbox speaks it:
// its routes, the request headers, the fields of its write bodies, the
// answers more than one side spells, and what an answer's status means to
// a writer. The workers (consumer) are its client; the development memory
// API (internal/memapi) and the front door (frontdoor) serve it;
// internal/sfmconformance checks a server against it. Each package keeps
// its own policy (retries, validation, storage); what a request and an
// answer are lives here, once.
package sfmapi
