package jspull

import (
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
)

// ackPrefix starts the reply subject of every stored message a pull
// delivers; the server sets it, a publisher cannot.
const ackPrefix = "$JS.ACK."

// pinHeader is the header nats-server appends to each write it delivers to
// the pinned member of a priority group.
const pinHeader = "Nats-Pin-Id"

// kind is what a message on the pull inbox is.
type kind int

const (
	// stored: a message from the stream, whatever its headers and body say.
	stored kind = iota
	// status: the server speaking (no reply subject): heartbeat, request
	// timeout, consumer deleted...
	status
	// stray: neither; ignored and counted.
	stray
)

// classify tells a stored message from a server status by its reply
// subject alone; see the package documentation for why.
func classify(m *nats.Msg) kind {
	switch {
	case strings.HasPrefix(m.Reply, ackPrefix):
		return stored
	case m.Reply == "" && statusCode(m) != "":
		return status
	default:
		return stray
	}
}

// statusCode is the code nats.go parsed from the status line of a status
// message ("NATS/1.0 408 Request Timeout"): it appends it to the "Status"
// header, so the last value is the status line's.
func statusCode(m *nats.Msg) string { return lastValue(m.Header, "Status") }

func statusDescription(m *nats.Msg) string { return lastValue(m.Header, "Description") }

func lastValue(h nats.Header, key string) string {
	if v := h.Values(key); len(v) > 0 {
		return v[len(v)-1]
	}
	return ""
}

// pinID is the pin id nats-server gave a stored message: the last
// "Nats-Pin-Id" value, since the server appends its header after the stored
// ones, and a publisher may have stored its own.
func pinID(m *nats.Msg) string { return lastValue(m.Header, pinHeader) }

// storedSize is a stored message's size as nats-server counts it against a
// request's max_bytes. The server counts before it appends the pin header
// ("Nats-Pin-Id: <id>\r\n"), so that is left out; when the server also had
// to open the header block the count here is 12 bytes over, which errs on
// the side of the bound.
func storedSize(m *nats.Msg, pinned bool) int {
	size := m.Size()
	if id := pinID(m); pinned && id != "" {
		size -= len(pinHeader) + len(": \r\n") + len(id)
	}
	return size
}

// requestLeft is what a request the server has just ended still had left to
// deliver, from the Nats-Pending-Messages and Nats-Pending-Bytes headers.
// ok is false when the status does not say, as for a request refused on
// arrival.
func requestLeft(m *nats.Msg) (msgs, bytes int, ok bool) {
	msgs, err1 := strconv.Atoi(m.Header.Get("Nats-Pending-Messages"))
	bytes, err2 := strconv.Atoi(m.Header.Get("Nats-Pending-Bytes"))
	if err1 != nil || err2 != nil || msgs < 0 || bytes < 0 {
		return 0, 0, false
	}
	return msgs, bytes, true
}
