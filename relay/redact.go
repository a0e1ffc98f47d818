package relay

import (
	"strings"

	"github.com/jackc/pgx/v5"
)

// redactErr removes the connection's password from an error's text: pgx's
// own errors never hold it, but a server or network error might quote a
// connection string.
func redactErr(err error, cfg *pgx.ConnConfig) error {
	if err == nil || cfg == nil || cfg.Password == "" || !strings.Contains(err.Error(), cfg.Password) {
		return err
	}
	return &redactedError{msg: strings.ReplaceAll(err.Error(), cfg.Password, "xxxxx"), err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }

// Unwrap keeps errors.Is and errors.As working on the original.
func (e *redactedError) Unwrap() error { return e.err }
