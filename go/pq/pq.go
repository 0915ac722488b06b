// Package pq connects database/sql to Azure Database for PostgreSQL with lib/pq and pgentra:
// every new connection of the pool is opened with a current connection string (libpq format),
// hence a current Entra ID token as its password.
//
//	c, err := pgentra.FromEnv("")
//	if err != nil { ... }
//	defer c.Close()
//	db := sql.OpenDB(pq.NewConnector(c))
//	db.SetConnMaxLifetime(30 * time.Minute) // optional: recycle connections well within a token's life
//
// Open connections stay open when their token expires (PostgreSQL checks the password at
// login only); connections opened later get the refreshed token.
//
// The package is named pq after its directory; import it under another name if your code
// also imports github.com/lib/pq.
package pq

import (
	"context"
	"database/sql/driver"
	"errors"

	libpq "github.com/lib/pq"

	pgentra "github.com/pgentra/pgentra/go"
)

// Connector is a database/sql/driver.Connector for sql.OpenDB.
type Connector struct {
	c *pgentra.Connector
}

var _ driver.Connector = (*Connector)(nil)

// NewConnector returns a driver.Connector whose every Connect uses a current connection
// string of c. c must stay open as long as the sql.DB uses it.
func NewConnector(c *pgentra.Connector) *Connector {
	return &Connector{c: c}
}

// Connect opens a new connection with a current token (or the configured password in secret
// mode). Waiting for a token honours ctx (see pgentra.Connector.Token). When the connect fails,
// the server's SQLSTATE goes to pgentra.Connector.ConnectFailed, which decides (the rule every
// pgentra binding shares): when the server refused the token the cache still holds (e.g. after
// the identity was recreated), the token is dropped (concurrent refusals cause one new identity
// request; the core keeps a token it has just fetched after such a refusal) and the connection
// is tried once more.
func (k *Connector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, token, err := k.connect(ctx)
	if err == nil || token == "" {
		return conn, err
	}
	// lib/pq reports a server's refusal as a *pq.Error with its SQLSTATE: an error without one
	// came before the server judged the password.
	var sqlstate string
	if pe := (*libpq.Error)(nil); errors.As(err, &pe) {
		sqlstate = string(pe.Code)
	}
	if !k.c.ConnectFailed(token, sqlstate, false) {
		return conn, err
	}
	conn, _, err = k.connect(ctx)
	return conn, err
}

// connect makes one attempt; token is the token it sent ("" in secret mode).
func (k *Connector) connect(ctx context.Context) (driver.Conn, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	// What the core would refuse to send (a TLS policy error) is refused before any identity
	// request: the settings, rendered without a token, carry the same check.
	if _, err := k.c.SettingsString(pgentra.Libpq, ""); err != nil {
		return nil, "", err
	}
	token, terr := k.c.Token(ctx) // the token the string below carries (secret mode: none)
	if terr != nil {
		var pe *pgentra.Error
		if !errors.As(terr, &pe) || pe.Kind != pgentra.KindConfig {
			return nil, "", terr
		}
		token = ""
	}
	dsn, err := k.c.ConnectionStringContext(ctx, pgentra.Libpq)
	if err != nil {
		return nil, "", err
	}
	pc, err := libpq.NewConnector(dsn)
	if err != nil {
		return nil, "", err
	}
	conn, err := pc.Connect(ctx)
	return conn, token, err
}

// Driver returns lib/pq's driver.
func (k *Connector) Driver() driver.Driver {
	return &libpq.Driver{}
}
