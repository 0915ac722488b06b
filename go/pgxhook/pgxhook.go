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
	"encoding/json"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	pgentra "github.com/pgentra/pgentra/go"
)

// BeforeConnect returns a hook for pgxpool.Config.BeforeConnect that sets cfg.Password to the
// connector's current password (token), and cfg.User to the connector's user when cfg.User is
// empty. Note that pgx fills an empty user with the operating-system user when it parses a
// connection string: to let the connector choose the user, start from PoolConfig, whose
// configuration already names it. Waiting for a token honours ctx.
func BeforeConnect(c *pgentra.Connector) func(context.Context, *pgx.ConnConfig) error {
	return func(ctx context.Context, cfg *pgx.ConnConfig) error {
		cur, err := current(ctx, c)
		if err != nil {
			return err
		}
		cfg.Password = cur.Password
		if cfg.User == "" {
			cfg.User = cur.User
		}
		return nil
	}
}

// PoolConfig parses the connector's current connection string (so host, port, database, user
// and sslmode come from pgentra's configuration) and sets BeforeConnect(c) as its hook.
func PoolConfig(ctx context.Context, c *pgentra.Connector) (*pgxpool.Config, error) {
	dsn, err := c.ConnectionStringContext(ctx, pgentra.Libpq)
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

type credentials struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

// current reads user and password from the JSON rendering, which works in token and secret
// mode alike (Token fails in secret mode).
func current(ctx context.Context, c *pgentra.Connector) (credentials, error) {
	var cur credentials
	s, err := c.ConnectionStringContext(ctx, pgentra.JSON)
	if err != nil {
		return cur, err
	}
	err = json.Unmarshal([]byte(s), &cur)
	return cur, err
}
