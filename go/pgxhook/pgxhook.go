// Package pgxhook connects pgx v5 (pgx.Conn and pgxpool) to Azure Database for PostgreSQL with
// pgentra: a BeforeConnect hook puts a current Entra ID token (or the configured password in
// secret mode) into every new connection's configuration.
//
//	c, err := pgentra.FromEnv("")
//	if err != nil { ... }
//	defer c.Close()
//	cfg, err := pgxhook.PoolConfig(ctx, c) // pgxpool.ParseConfig of c's connection string + the hook
//	if err != nil { ... }
//	pool, err := pgxpool.NewWithConfig(ctx, cfg)
//
// or, with a configuration of your own: cfg.BeforeConnect = pgxhook.BeforeConnect(c).
// Open connections stay open when their token expires (PostgreSQL checks the password at
// login only); connections opened later get the refreshed token. Set cfg.MaxConnLifetime to
// recycle them if you wish.
package pgxhook

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	pgentra "github.com/pgentra/pgentra/go"
)

// BeforeConnect returns a hook for pgxpool.Config.BeforeConnect that sets cfg.Password to the
// connector's current password (token), and cfg.User to the connector's user when cfg.User is
// empty. The configuration's own host, port, database, user and TLS mode go through pgentra's
// final check first: its TLS is never weaker than the connector's (a fallback without TLS, as
// pgx's sslmode=prefer adds, is dropped), and an Azure server name gets verify-full. Note that pgx
// fills an empty user with the operating-system user when it parses a connection string: to let
// the connector choose the user, start from PoolConfig, whose configuration already names it.
// Waiting for a token honours ctx. The hook also wraps cfg.OnPgError so that a refused login
// reaches Connector.ConnectFailed: the connect that was refused fails, the next one gets a new
// token (NewPool and Connect also retry at once). pgxpool calls it on a copy of its
// configuration for each connection; call it once per configuration if you call it yourself.
func BeforeConnect(c *pgentra.Connector) func(context.Context, *pgx.ConnConfig) error {
	return func(ctx context.Context, cfg *pgx.ConnConfig) error {
		theirs := modeOf(cfg.TLSConfig, cfg.Fallbacks)
		var ov strings.Builder
		fmt.Fprintf(&ov, "sslmode=%s", theirs)
		if cfg.Host != "" {
			fmt.Fprintf(&ov, " host=%s", quote(cfg.Host))
		}
		if cfg.Port != 0 {
			fmt.Fprintf(&ov, " port=%d", cfg.Port)
		}
		if cfg.Database != "" {
			fmt.Fprintf(&ov, " dbname=%s", quote(cfg.Database))
		}
		if cfg.User != "" {
			fmt.Fprintf(&ov, " user=%s", quote(cfg.User))
		}
		dsn, err := c.ConnectionStringWith(ctx, pgentra.Libpq, ov.String())
		if err != nil {
			return err
		}
		final, err := pgconn.ParseConfig(dsn)
		if err != nil {
			return err
		}
		if rank[modeOf(final.TLSConfig, final.Fallbacks)] > rank[theirs] {
			cfg.TLSConfig, cfg.Fallbacks = final.TLSConfig, final.Fallbacks
		}
		kept := cfg.Fallbacks[:0]
		for _, f := range cfg.Fallbacks {
			if f.TLSConfig != nil {
				kept = append(kept, f)
			}
		}
		cfg.Fallbacks = kept
		if cfg.TLSConfig == nil && final.TLSConfig != nil {
			return &pgentra.Error{Kind: pgentra.KindTLSPolicy, Message: "the pgx configuration has no TLS; pgentra does not send a token without it"}
		}
		cfg.Password = final.Password
		if cfg.User == "" {
			cfg.User = final.User
		}
		watchLogin(c, cfg)
		return nil
	}
}

// PoolConfig parses the connector's connection string (so host, port, database, user and
// sslmode come from pgentra's configuration, after its TLS policy) and sets BeforeConnect(c) as
// its hook. The configuration holds no password or token: ConnString() shows none, and every
// connection gets a current one from the hook.
func PoolConfig(ctx context.Context, c *pgentra.Connector) (*pgxpool.Config, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// The user may come from the token's claims (a managed identity): name it, or pgx would
	// fill in the operating-system user.
	user, err := c.UserContext(ctx)
	if err != nil {
		return nil, err
	}
	dsn, err := c.SettingsString(pgentra.Libpq, "user="+quote(user))
	if err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	cfg.BeforeConnect = BeforeConnect(c)
	return cfg, nil
}

var rank = map[string]int{"disable": 0, "prefer": 2, "require": 3, "verify-ca": 4, "verify-full": 5}

// modeOf is the libpq sslmode a pgx TLS configuration amounts to.
func modeOf(t *tls.Config, fallbacks []*pgconn.FallbackConfig) string {
	switch {
	case t == nil:
		return "disable"
	case hasPlainFallback(fallbacks):
		return "prefer"
	case t.InsecureSkipVerify && t.VerifyPeerCertificate != nil:
		return "verify-ca"
	case t.InsecureSkipVerify:
		return "require"
	default:
		return "verify-full"
	}
}

func hasPlainFallback(fallbacks []*pgconn.FallbackConfig) bool {
	for _, f := range fallbacks {
		if f.TLSConfig == nil {
			return true
		}
	}
	return false
}

// quote writes a libpq keyword/value value.
func quote(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}
