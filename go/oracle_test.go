package pgentra_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/lib/pq"
)

// Go's drivers do not use libpq: pgx (pgconn.ParseConfig) and lib/pq (pq.NewConfig) each have a
// keyword/value parser and a URL parser of their own. Each reads every conformance vector's
// `libpq` and `uri` rendering back to the vector's params (go.mod: pgx v5.13.0, lib/pq v1.12.3).
// Parsing only: no database.

type readBack struct {
	Host, DBName, User, Password, SSLMode string
	Port                                  int
}

// clearPGEnv keeps the machine's PG* variables (and ~/.pgpass) out of the parsers, which fall
// back to them for whatever a string leaves out; t.Setenv restores them afterwards.
func clearPGEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PG") && !strings.HasPrefix(k, "PGENTRA") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	t.Setenv("PGPASSFILE", "/nonexistent")
}

// pgx keeps no sslmode string: it turns sslmode into a tls.Config (and fallbacks for
// prefer/allow). This reads the mode back from what pgx would do on the wire.
func pgxSSLMode(cfg *pgconn.Config) string {
	tc := cfg.TLSConfig
	switch {
	case tc == nil && len(cfg.Fallbacks) == 0:
		return "disable"
	case tc == nil || len(cfg.Fallbacks) > 0:
		return fmt.Sprintf("fallbacks(%d)", len(cfg.Fallbacks))
	case tc.InsecureSkipVerify && tc.VerifyPeerCertificate == nil:
		return "require"
	case tc.InsecureSkipVerify:
		return "verify-ca"
	case tc.ServerName == cfg.Host:
		return "verify-full"
	}
	return fmt.Sprintf("unknown tls.Config (ServerName %q)", tc.ServerName)
}

var goParsers = map[string]func(string) (readBack, error){
	"pgx": func(s string) (readBack, error) {
		cfg, err := pgconn.ParseConfig(s)
		if err != nil {
			return readBack{}, err
		}
		return readBack{cfg.Host, cfg.Database, cfg.User, cfg.Password, pgxSSLMode(cfg), int(cfg.Port)}, nil
	},
	"lib/pq": func(s string) (readBack, error) {
		cfg, err := pq.NewConfig(s)
		if err != nil {
			return readBack{}, err
		}
		return readBack{cfg.Host, cfg.Database, cfg.User, cfg.Password, string(cfg.SSLMode), int(cfg.Port)}, nil
	},
}

func TestOracleGoDriversParseRenderings(t *testing.T) {
	clearPGEnv(t)
	for _, v := range loadVectors(t) {
		want := readBack{v.Params.Host, v.Params.DBName, v.Params.User, v.Params.Password, v.Params.SSLMode, v.Params.Port}
		for _, driver := range []string{"pgx", "lib/pq"} {
			for _, format := range []string{"libpq", "uri"} {
				s, ok := v.Rendered[format]
				if !ok || s == "" {
					t.Fatalf("%s: no %s rendering", v.Name, format)
				}
				got, err := goParsers[driver](s)
				if err != nil {
					// The error may quote the string, which holds the password: name the vector only.
					t.Errorf("%s %s %s: the parser refused the rendering", driver, format, v.Name)
					continue
				}
				if got != want {
					t.Errorf("%s %s %s: read %#v, want %#v", driver, format, v.Name, got, want)
				}
			}
		}
	}
}
