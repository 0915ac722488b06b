'use strict';
// Oracles: the URL parsers Node.js users meet when they paste pgentra's `uri` format (README, "URL-only
// tools": DATABASE_URL for node-postgres, Knex, Sequelize, Drizzle, ...) read every conformance
// vector (tests/vectors/render.json) back. Parsing only: nothing connects, no harness needed.
//
// pgentra's URI is RFC 3986 and libpq's reading of it (tests/oracle): every value percent-encoded
// where needed and decoded by libpq, pgx, lib/pq, pgJDBC, SQLAlchemy and asyncpg alike. Three of
// these JavaScript parsers decode the database name (the URL path) their own way; the tests pin
// exactly what they mis-read so that a change on either side is seen:
//   - pg-connection-string (node-postgres 8.23.1 uses 2.14.1; Knex 3.3.0 uses 2.6.2) decodes the
//     path with decodeURI, which leaves the escapes of ; / ? : @ & = + $ , # undecoded;
//   - postgres.js 3.4.9 (Drizzle's other driver) never decodes the path;
//   - Sequelize 6.37.8 (new Sequelize(uri)) never decodes the path, and splits the decoded
//     userinfo at its first ':', so a user name holding ':' loses the rest to the password.
// No rendering serves them and libpq both: '/', '?' and '#' must stay escaped in a path, and
// pgentra's own Node.js integrations hand these drivers configuration objects, not URLs.

const { test, describe } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const vectors = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'tests', 'vectors', 'render.json'), 'utf8'));
const pg = require('pg');
const parsers = {
  'node-postgres (pg-connection-string 2.14.1)': require(require.resolve('pg-connection-string', { paths: [path.dirname(require.resolve('pg'))] })).parse,
  'Knex (pg-connection-string 2.6.2)': require(require.resolve('pg-connection-string', { paths: [path.dirname(require.resolve('knex'))] })).parse,
};
const postgres = require('postgres');
const { Sequelize } = require('sequelize');

// The database name exactly as pgentra wrote it in the URI's path (percent-encoded).
const encodedDbname = (uri) => {
  const m = /^postgresql:\/\/[^@/]*@[^/]*\/([^?]*)\?/.exec(uri);
  assert.ok(m, 'a URI with userinfo, host, path and query');
  return m[1];
};
// Characters whose escapes decodeURI keeps.
const DECODE_URI_KEEPS = /[;/?:@&=+$,#]/;

// The versions the descriptions name (the lock file's): read from disk, since some packages do not
// export their package.json.
const versionOf = (main, name) => {
  let dir = path.dirname(main);
  while (!fs.existsSync(path.join(dir, 'package.json')) || JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).name !== name) dir = path.dirname(dir);
  return JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).version;
};
test('the parsers are the versions named here', () => {
  const cs = (from) => versionOf(require.resolve('pg-connection-string', { paths: [path.dirname(require.resolve(from))] }), 'pg-connection-string');
  assert.deepEqual([versionOf(require.resolve('pg'), 'pg'), cs('pg'), versionOf(require.resolve('knex'), 'knex'), cs('knex'), versionOf(require.resolve('postgres'), 'postgres'), versionOf(require.resolve('sequelize'), 'sequelize')],
    ['8.23.1', '2.14.1', '3.3.0', '2.6.2', '3.4.9', '6.37.8']);
});

test('there are vectors, each with the six keys these oracles compare', () => {
  assert.ok(vectors.length >= 10);
  for (const v of vectors) assert.deepEqual(Object.keys(v.params).sort(), ['dbname', 'host', 'password', 'port', 'sslmode', 'user'], v.name);
});

describe('WHATWG URL with decodeURIComponent on every part reads every vector back', () => {
  for (const v of vectors) {
    test(v.name, () => {
      const u = new URL(v.rendered.uri);
      assert.equal(u.protocol, 'postgresql:');
      assert.deepEqual({
        host: u.hostname, port: Number(u.port), dbname: decodeURIComponent(u.pathname.slice(1)),
        user: decodeURIComponent(u.username), password: decodeURIComponent(u.password), sslmode: u.searchParams.get('sslmode'),
      }, v.params);
      assert.deepEqual([...u.searchParams.keys()], ['sslmode']);
    });
  }
});

for (const [name, parse] of Object.entries(parsers)) {
  describe(`${name}: exact but for database names holding ; / ? : @ & = + $ , #`, () => {
    for (const v of vectors) {
      test(v.name, () => {
        const p = v.params;
        const c = parse(v.rendered.uri);
        assert.deepEqual({ host: c.host, port: Number(c.port), user: c.user, password: c.password, sslmode: c.sslmode },
          { host: p.host, port: p.port, user: p.user, password: p.password, sslmode: p.sslmode });
        if (DECODE_URI_KEEPS.test(p.dbname)) {
          assert.notEqual(c.database, p.dbname, 'mis-read: the database name');
          const enc = encodedDbname(v.rendered.uri);
          assert.equal(decodeURIComponent(enc), p.dbname);
          assert.equal(c.database, decodeURI(enc));
        } else {
          assert.equal(c.database, p.dbname);
        }
      });
    }
  });
}

describe('node-postgres: pg.Client({ connectionString }) takes what pg-connection-string read', () => {
  const parse = parsers['node-postgres (pg-connection-string 2.14.1)'];
  for (const v of vectors) {
    test(v.name, () => {
      const c = parse(v.rendered.uri);
      const client = new pg.Client({ connectionString: v.rendered.uri });
      const cp = client.connectionParameters;
      assert.deepEqual([cp.host, cp.port, cp.user, cp.password, cp.database], [c.host, Number(c.port), c.user, c.password, c.database]);
      assert.ok(cp.ssl, 'TLS on');
    });
  }
});

describe('postgres.js 3.4.9: exact but for database names pgentra percent-encodes (read still encoded)', () => {
  for (const v of vectors) {
    test(v.name, () => {
      const p = v.params;
      const sql = postgres(v.rendered.uri); // connects lazily: on the first query, never here
      const o = sql.options;
      assert.deepEqual({ host: o.host, port: o.port, user: o.user, password: o.pass, sslmode: o.ssl },
        { host: [p.host], port: [p.port], user: p.user, password: p.password, sslmode: p.sslmode });
      const enc = encodedDbname(v.rendered.uri);
      assert.equal(decodeURIComponent(enc), p.dbname);
      assert.equal(o.database, enc);
      if (enc !== p.dbname) assert.notEqual(o.database, p.dbname, 'mis-read: the database name');
    });
  }
});

describe("Sequelize 6.37.8: exact but for database names pgentra percent-encodes and user names holding ':'", () => {
  for (const v of vectors) {
    test(v.name, () => {
      const p = v.params;
      const s = new Sequelize(v.rendered.uri, { logging: false });
      const c = s.config;
      assert.equal(s.getDialect(), 'postgres');
      assert.deepEqual([c.host, Number(c.port), s.options.dialectOptions.sslmode], [p.host, p.port, p.sslmode]);
      const enc = encodedDbname(v.rendered.uri);
      assert.equal(decodeURIComponent(enc), p.dbname);
      assert.equal(c.database, enc);
      if (enc !== p.dbname) assert.notEqual(c.database, p.dbname, 'mis-read: the database name');
      if (p.user.includes(':')) {
        const [user, ...rest] = `${p.user}:${p.password}`.split(':');
        assert.deepEqual([c.username, c.password], [user, rest.join(':')]);
        assert.notEqual(c.username, p.user, 'mis-read: the user name');
      } else {
        assert.deepEqual([c.username, c.password], [p.user, p.password]);
      }
    });
  }
});

describe('the libpq keyword/value format was never meant for these URL parsers', () => {
  // pgentra's default format is libpq; for a JavaScript driver's connectionString use { format: 'uri' }.
  // node-postgres does not refuse it: pg-connection-string reads it as a URL relative to
  // postgres://base, i.e. host 'base', no user, and the whole string (password included) as the
  // database name. postgres.js refuses it (new URL throws "Invalid URL", or decodeURIComponent
  // "URI malformed" where a value holds a '%' that starts no escape).
  const parse = parsers['node-postgres (pg-connection-string 2.14.1)'];
  for (const v of vectors) {
    test(v.name, () => {
      const s = v.rendered.libpq;
      const c = parse(s);
      assert.deepEqual([c.host, c.user, c.password], ['base', '', '']);
      assert.ok(c.database.startsWith(`host=${v.params.host} port=${v.params.port} dbname=`), 'the string read as the database name');
      assert.throws(() => postgres(s), (e) => (e.code === 'ERR_INVALID_URL' || e instanceof URIError) && !e.message.includes(s));
    });
  }
});
