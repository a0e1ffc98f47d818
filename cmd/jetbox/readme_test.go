package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/jetbox-dev/jetbox/internal/config"
)

// The README's configuration table is what 'jetbox config --table' prints,
// so a new setting cannot go undocumented.
func TestReadmeConfigurationTableIsCurrent(t *testing.T) {
	cfg, err := config.Load(map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	if err := showConfig(cfg, true, &table); err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), table.String()) {
		t.Fatalf("README.md's configuration table differs from 'jetbox config --table'; paste this:\n%s", table.String())
	}
}
