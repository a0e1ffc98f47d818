// Package pgtest starts throwaway PostgreSQL clusters for tests: a new
// cluster in a temporary directory, listening on a random loopback port,
// stopped by its own pg_ctl when the test ends.
//
// initdb refuses to run as root, so when the tests run as root the cluster
// belongs to the unprivileged user "postgres" (created by the Debian
// package) and its programs run under setpriv. When the PostgreSQL programs
// are missing the test is skipped, unless CI is set: then it fails, so that
// CI cannot pass without the tests that need PostgreSQL.
package pgtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// binDirs are searched for initdb and pg_ctl after PATH.
var binDirs = []string{"/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin"}

// Server is a running cluster.
type Server struct {
	DSN  string // postgres://postgres@127.0.0.1:<port>/postgres?sslmode=disable
	Port int
	dir  string
	run  func(name string, args ...string) *exec.Cmd
}

// Start runs a new cluster for the test.
func Start(t testing.TB) *Server {
	t.Helper()
	initdb, pgctl := findBinaries()
	if initdb == "" || pgctl == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("pgtest: initdb or pg_ctl not found, and CI is set: install PostgreSQL (.ci/run does: apt-get install -y postgresql)")
		}
		t.Skip("pgtest: PostgreSQL is not installed (no initdb/pg_ctl in PATH or /usr/lib/postgresql/*/bin); apt-get install -y postgresql")
	}
	base := t.TempDir()
	s := &Server{dir: filepath.Join(base, "pg")}
	s.run = exec.Command
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("pgtest: running as root, initdb needs an unprivileged user and there is no user postgres: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		// The test's temporary directories are root's, mode 0700.
		for d := base; d != filepath.Dir(d) && strings.HasPrefix(d, os.TempDir()) && d != os.TempDir(); d = filepath.Dir(d) {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatalf("pgtest: %v", err)
			}
		}
		if err := os.Mkdir(s.dir, 0o700); err != nil {
			t.Fatalf("pgtest: %v", err)
		}
		if err := os.Chown(s.dir, uid, gid); err != nil {
			t.Fatalf("pgtest: %v", err)
		}
		setpriv, err := exec.LookPath("setpriv")
		if err != nil {
			t.Fatalf("pgtest: running as root needs setpriv (util-linux): %v", err)
		}
		s.run = func(name string, args ...string) *exec.Cmd {
			return exec.Command(setpriv, append([]string{"--reuid=" + u.Uid, "--regid=" + u.Gid, "--init-groups", "--", name}, args...)...)
		}
	}
	if out, err := s.run(initdb, "-D", s.dir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port := freePort(t)
		opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -k %s -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200", port, s.dir)
		out, err := s.run(pgctl, "-D", s.dir, "-l", filepath.Join(s.dir, "log"), "-o", opts, "-w", "-t", "60", "start").CombinedOutput()
		if err == nil {
			s.Port = port
			s.DSN = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
			break
		}
		lastErr = fmt.Errorf("%v\n%s", err, out)
	}
	if s.DSN == "" {
		log, _ := os.ReadFile(filepath.Join(s.dir, "log"))
		t.Fatalf("pgtest: pg_ctl start: %v\n%s", lastErr, log)
	}
	t.Cleanup(func() {
		if out, err := s.run(pgctl, "-D", s.dir, "-m", "immediate", "-w", "stop").CombinedOutput(); err != nil {
			t.Errorf("pgtest: pg_ctl stop: %v\n%s", err, out)
		}
	})
	return s
}

func findBinaries() (initdb, pgctl string) {
	find := func(name string) string {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		for _, d := range binDirs {
			if p := filepath.Join(d, name); fileExists(p) {
				return p
			}
		}
		return ""
	}
	return find("initdb"), find("pg_ctl")
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Exec runs SQL on a new connection.
func (s *Server) Exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}

// Connect opens a connection closed at the end of the test.
func (s *Server) Connect(t testing.TB) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// CreateOutboxTable creates SomaBrain's outbox_events table from
// deploy/postgres/01-outbox_events.sql, the file docker-compose's
// PostgreSQL runs too.
func (s *Server) CreateOutboxTable(t testing.TB) {
	t.Helper()
	_, self, _, _ := runtime.Caller(0)
	sql, err := os.ReadFile(filepath.Join(filepath.Dir(self), "..", "..", "deploy", "postgres", "01-outbox_events.sql"))
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	s.Exec(t, string(sql))
}
