// Package jspull pulls from JetStream consumers by hand, so that what a
// publisher stores in a stream can never be taken for the server speaking.
//
// The nats.go jetstream pull consumers (v1.55.0, v1.56.0) tell a server
// status message from a stored message by its content: checkMsg treats any
// delivered message with an empty body and a "Status" header as a status.
// A publisher that stores an empty write with "Status: 409" and
// "Description: Consumer Deleted" ends a Messages iterator for good; any other
// Status value is swallowed, never acked, and redelivered forever. They also
// take a pinned priority group's pin id from the first "Nats-Pin-Id" header of
// a delivered message, while nats-server appends its own after the stored
// headers, so a stored message with a forged pin id makes the owner pull with
// the wrong id and stall until the pin times out.
//
// This package tells them apart by the reply subject, which a publisher does
// not control: every stored message a pull delivers carries a "$JS.ACK." reply
// subject, and a server status never carries one. A message with an ack reply
// subject is the publisher's, whatever its headers and body; its pin id is the
// last "Nats-Pin-Id" value, the one the server appended. docs/NATSGO-STATUS-HEADER.md
// reproduces both nats.go behaviours.
//
// [Messages] is the continuous iterator a partition owner uses; [Fetch] is a
// single pull request. Both hand out [*Msg], a [jetstream.Msg].
package jspull
