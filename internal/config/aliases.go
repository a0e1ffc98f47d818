package config

import (
	"fmt"
	"maps"
	"strconv"
	"strings"
)

// alias is a name SomaBrain reads for what one of jetbox's settings means.
// It applies only when the jetbox name is unset, so an operator can point
// jetbox at SomaBrain's environment as it is.
type alias struct {
	name, target string
	// value turns the alias's value into the target's; ok is false when
	// the alias asks for the target's default.
	value func(string) (v string, ok bool, err error)
}

var aliases = []alias{
	// SomaBrain's switch between waiting for the memory API and returning
	// once the write is queued.
	{name: "SOMABRAIN_MEMORY_FAST_ACK", target: "SOMABRAIN_MEMORY_WRITE_MODE", value: func(s string) (string, bool, error) {
		on, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return "", false, fmt.Errorf("%w: SOMABRAIN_MEMORY_FAST_ACK=%q, allowed: true, false (SomaBrain's name for SOMABRAIN_MEMORY_WRITE_MODE=fast_ack)", ErrInvalid, s)
		}
		return "fast_ack", on, nil
	}},
}

// applyAliases sets, in environ, the target of every alias that is set while
// its target is not, and says what it did.
func applyAliases(environ map[string]string) (notes []string, err error) {
	for _, a := range aliases {
		raw, set := environ[a.name]
		if !set || raw == "" {
			continue
		}
		v, ok, err := a.value(raw)
		if err != nil {
			return nil, err
		}
		if environ[a.target] != "" {
			notes = append(notes, fmt.Sprintf("%s=%s is ignored: %s is set", a.name, raw, a.target))
			continue
		}
		if !ok {
			notes = append(notes, fmt.Sprintf("%s=%s: %s keeps its default", a.name, raw, a.target))
			continue
		}
		environ[a.target] = v
		notes = append(notes, fmt.Sprintf("%s=%s read as %s=%s", a.name, raw, a.target, v))
	}
	return notes, nil
}

// AliasNotes says which of SomaBrain's setting names jetbox read, and how,
// in environ; jetbox config prints them.
func AliasNotes(environ map[string]string) []string {
	notes, err := applyAliases(maps.Clone(environ))
	if err != nil {
		return []string{err.Error()}
	}
	return notes
}
