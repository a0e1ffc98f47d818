package streams

import "time"

// MemberRecord is what a worker publishes about itself in the members
// bucket (Config.MembersBucket), under its id, and refreshes while it runs.
type MemberRecord struct {
	ID      string    `json:"id"`
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Modes   []Mode    `json:"modes"`
	Started time.Time `json:"started"`
}
