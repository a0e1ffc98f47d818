package sfmapi

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Class is what an answer to a write means to the writer.
type Class int

const (
	Applied   Class = iota // 2xx
	Transient              // no answer, 408, 425, 429, 5xx: try again
	Permanent              // any other answer: the write is refused, never retry
)

// Classify is the class of an answer's status.
func Classify(status int) Class {
	switch {
	case status >= 200 && status < 300:
		return Applied
	case status == http.StatusRequestTimeout, status == http.StatusTooEarly, status == http.StatusTooManyRequests, status >= 500:
		return Transient
	default:
		return Permanent
	}
}

// IsMisconfiguration says whether a status means the writer, not the
// write, is wrong: 401 and 403 (the token), 404 on a write route (the
// base URL: the memory API never answers 404 to a well-formed write).
func IsMisconfiguration(status int) bool {
	return status == http.StatusUnauthorized || status == http.StatusForbidden || status == http.StatusNotFound
}

// ParseRetryAfter reads a Retry-After value, delay-seconds or an HTTP
// date; 0 when absent or bad.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
		if secs < 0 {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
