package sfmconformance

import (
	"encoding/json"
	"fmt"
)

// What an answer's body must be. A want is one of:
//   - nil, a string, a bool, a number (int or float64): that JSON value
//     (numbers compared by value, so 1 matches 1.0);
//   - obj: a JSON object with exactly these keys, each matching its want;
//   - list: a JSON array of exactly these elements;
//   - matcher: a check of its own.

type obj map[string]any

type list []any

type matcher func(v any) error

var (
	aString  matcher = func(v any) error { return isType[string](v, "a string") }
	aBool    matcher = func(v any) error { return isType[bool](v, "a boolean") }
	aNumber  matcher = func(v any) error { return isType[json.Number](v, "a number") }
	anObject matcher = func(v any) error { return isType[map[string]any](v, "an object") }
	aList    matcher = func(v any) error { return isType[[]any](v, "an array") }
)

func isType[T any](v any, what string) error {
	if _, ok := v.(T); !ok {
		return fmt.Errorf("%s, want %s", show(v), what)
	}
	return nil
}

// listOf is an array of n elements (any number when n < 0), each matching each.
func listOf(n int, each any) matcher {
	return func(v any) error {
		items, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%s, want an array", show(v))
		}
		if n >= 0 && len(items) != n {
			return fmt.Errorf("%d elements, want %d: %s", len(items), n, show(v))
		}
		for i, item := range items {
			if err := match(item, each); err != nil {
				return fmt.Errorf("[%d]: %w", i, err)
			}
		}
		return nil
	}
}

// validationError is Ninja's 422 answer, {"detail": [{"type", "loc", "msg"}, ...]},
// with an item whose loc ends with the given path.
func validationError(loc ...any) obj {
	return obj{"detail": matcher(func(v any) error {
		items, ok := v.([]any)
		if !ok || len(items) == 0 {
			return fmt.Errorf("%s, want a non-empty array of validation errors", show(v))
		}
		for _, item := range items {
			e, ok := item.(map[string]any)
			if !ok {
				return fmt.Errorf("%s is not an object", show(item))
			}
			for _, field := range []string{"type", "loc", "msg"} {
				if _, ok := e[field]; !ok {
					return fmt.Errorf("%s has no %q", show(item), field)
				}
			}
			at, _ := e["loc"].([]any)
			if len(at) >= len(loc) && match(at[len(at)-len(loc):], list(loc)) == nil {
				return nil
			}
		}
		return fmt.Errorf("no error at %v in %s", loc, show(v))
	})}
}

// detail is SFM's error answer with exactly this message.
func detail(message string) obj { return obj{"detail": message} }

func match(got, want any) error {
	switch w := want.(type) {
	case matcher:
		return w(got)
	case obj:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Errorf("%s, want an object", show(got))
		}
		for k, wv := range w {
			gv, ok := g[k]
			if !ok {
				return fmt.Errorf("no %q in %s", k, show(got))
			}
			if err := match(gv, wv); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
		}
		for k := range g {
			if _, ok := w[k]; !ok {
				return fmt.Errorf("unexpected field %q in %s", k, show(got))
			}
		}
		return nil
	case list:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return fmt.Errorf("%s, want %s", show(got), show(w))
		}
		for i := range w {
			if err := match(g[i], w[i]); err != nil {
				return fmt.Errorf("[%d]: %w", i, err)
			}
		}
		return nil
	case int:
		return match(got, float64(w))
	case float64:
		n, ok := got.(json.Number)
		if f, err := n.Float64(); !ok || err != nil || f != w {
			return fmt.Errorf("%s, want %v", show(got), w)
		}
		return nil
	default:
		if got != want {
			return fmt.Errorf("%s, want %s", show(got), show(want))
		}
		return nil
	}
}

func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	s := string(b)
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
