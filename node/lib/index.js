'use strict';
/**
 * pgentra for Node.js: Microsoft Entra ID tokens for Azure Database for PostgreSQL.
 *
 * A thin layer over the native addon (../binding.js, crate bindings/node), which wraps the Rust
 * core. Identity requests run on the core's own runtime, never on the event loop; a cached
 * token is returned without I/O.
 *
 *   const pgentra = require('pgentra');
 *   const pool = new pg.Pool(await pgentra.pgConfig());   // every new connection gets a current token
 */

const fs = require('node:fs');
const tls = require('node:tls');
const net = require('node:net');
const native = require('../binding.js');

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/** The codes, in the core's error-kind order; the native addon owns the mapping. */
const CODES = Object.freeze(native.errorCodes());

/**
 * Every error pgentra raises. `code` is one of `PgEntraError.codes`; `serviceCode` is the
 * identity service's own code (e.g. "AADSTS7000215") when it gave one. Messages name the
 * variable, key or option at fault and never contain a token, secret or password.
 */
class PgEntraError extends Error {
  constructor(code, message, serviceCode, options) {
    super(message, options);
    this.name = 'PgEntraError';
    this.code = code;
    this.serviceCode = serviceCode;
  }
}
PgEntraError.codes = Object.freeze(
  Object.fromEntries(CODES.map((c) => [c.replace(/^PGENTRA_/, ''), c])),
);

const CONFIG = PgEntraError.codes.CONFIG;
const INTERNAL = PgEntraError.codes.INTERNAL;

// The native addon's errors read `CODE: message` or `CODE [serviceCode]: message`
// (to_js_error in bindings/node/src/lib.rs). This is the one place that reads them.
const NATIVE_ERROR = /^(PGENTRA_[A-Z_]+)(?: \[([^\]]+)\])?: ([\s\S]*)$/;

/** Where the password function notes, on a pg Client, the token it gave. */
const HANDED = Symbol('pgentra.handedToken');
/** Marks a Sequelize connection manager whose connect() already recovers from a refused token. */
const RECOVERS = Symbol('pgentra.recovers');
// On a connect error: connectFailed() said to connect once more (read by pool()'s Pool).
const RETRY = Symbol('pgentra.retry');

/** The server's SQLSTATE in a driver error (or the one a framework wraps), else null. */
function sqlstateOf(err) {
  if (!err || typeof err !== 'object') return null;
  const cause = err.original || err.parent || err;
  const code = cause && cause.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : null;
}

/** Old names kept for one release: each warns once per process (DeprecationWarning). */
const DEPRECATED = Object.freeze({
  getToken: ['PGENTRA_DEP_GETTOKEN', 'getToken() is deprecated; use token()'],
});
const warned = new Set();
function deprecated(name) {
  if (warned.has(name)) return;
  warned.add(name);
  const [code, message] = DEPRECATED[name];
  process.emitWarning(`pgentra: ${message}`, { type: 'DeprecationWarning', code });
}

function fromNative(err) {
  if (err instanceof PgEntraError) return err;
  const message = err && typeof err.message === 'string' ? err.message : String(err);
  const m = NATIVE_ERROR.exec(message);
  if (m && CODES.includes(m[1])) return new PgEntraError(m[1], m[3], m[2]);
  return new PgEntraError(INTERNAL, `unexpected error in the pgentra addon: ${message}`, undefined, { cause: err });
}

function configError(message) {
  return new PgEntraError(CONFIG, message);
}

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

const OPTION_TYPES = Object.freeze({
  prefix: 'string',
  connectionString: 'string',
  host: 'string',
  port: 'number',
  database: 'string',
  user: 'string',
  password: 'string',
  sslmode: 'string',
  credential: 'string',
  clientId: 'string',
  tenantId: 'string',
  clientSecret: 'string',
  certificatePath: 'string',
  federatedTokenFile: 'string',
  scope: 'string',
  authorityHost: 'string',
  allowInsecure: 'boolean',
  allowUnverifiedTls: 'boolean',
  timeoutMs: 'number',
});

function nativeOptions(options) {
  if (options === undefined || options === null) return undefined;
  if (typeof options !== 'object' || Array.isArray(options)) {
    throw configError(`Connector options must be an object, not ${Array.isArray(options) ? 'an array' : typeof options}`);
  }
  const out = {};
  for (const [key, value] of Object.entries(options)) {
    const type = OPTION_TYPES[key];
    if (!type) {
      throw configError(`unknown Connector option '${key}'; use one of ${Object.keys(OPTION_TYPES).join(', ')}`);
    }
    if (value === undefined || value === null) continue;
    if (type === 'number' && typeof value === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(value)) {
      out[key] = Number(value);
    } else if (typeof value !== type) {
      // Never echo a value: it may be a secret.
      throw configError(`Connector option '${key}' must be a ${type}, not ${typeof value}`);
    } else {
      out[key] = value;
    }
  }
  return out;
}

function formatOf(arg) {
  if (arg === undefined || arg === null) return undefined;
  if (typeof arg === 'string') return arg;
  if (typeof arg === 'object' && (arg.format === undefined || typeof arg.format === 'string')) return arg.format;
  throw configError("connectionString() takes { format } with format one of 'libpq', 'uri', 'ado', 'jdbc', 'json', 'shell'");
}

// ---------------------------------------------------------------------------------------------
// TLS: libpq's sslmode as a node-postgres `ssl` value
// ---------------------------------------------------------------------------------------------

function readFile(path, key) {
  try {
    return fs.readFileSync(path);
  } catch (e) {
    throw configError(`cannot read ${key} '${path}': ${e.code || e.message}`);
  }
}

function systemCa() {
  // Node 22.15+ / 23.5+ can read the operating system's store; older versions use Node's bundled
  // Mozilla store (plus NODE_EXTRA_CA_CERTS), which is what `undefined` gives.
  if (typeof tls.getCACertificates === 'function') {
    try {
      return tls.getCACertificates('system');
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/**
 * The `ssl` value for node-postgres (and Sequelize's `dialectOptions.ssl`) with libpq's meaning:
 * - disable, allow, prefer: `false` (node-postgres has no opportunistic TLS; pgentra refuses to
 *   send a token under these modes unless allowInsecure is set);
 * - require: encrypted, certificate not verified, except that, as in libpq, an explicit
 *   `sslrootcert` makes it behave as verify-ca;
 * - verify-ca: the chain is verified (against `sslrootcert` if given, else the system store),
 *   the host name is not;
 * - verify-full: chain and host name are verified.
 * `sslcert`, `sslkey` and `sslpassword` become the client certificate.
 */
function sslConfig(sslmode, extra = {}, host = undefined) {
  const mode = sslmode || 'require';
  if (mode === 'disable' || mode === 'allow' || mode === 'prefer') return false;
  const rootcert = extra.sslrootcert;
  let ca;
  if (rootcert && rootcert !== 'system') ca = readFile(rootcert, 'sslrootcert');
  else if (rootcert === 'system' || mode !== 'require') ca = systemCa();
  let ssl;
  if (mode === 'verify-full') {
    ssl = { rejectUnauthorized: true };
    // The name checked against the certificate (and sent as SNI): the one host, never an IP.
    if (typeof host === 'string' && host && !host.includes(',') && net.isIP(host) === 0) ssl.servername = host;
  } else if (mode === 'verify-ca' || (mode === 'require' && rootcert)) {
    ssl = { rejectUnauthorized: true, checkServerIdentity: () => undefined };
  } else {
    ssl = { rejectUnauthorized: false };
  }
  if (ca !== undefined) ssl.ca = ca;
  if (extra.sslcert) ssl.cert = readFile(extra.sslcert, 'sslcert');
  if (extra.sslkey) ssl.key = readFile(extra.sslkey, 'sslkey');
  if (extra.sslpassword) ssl.passphrase = extra.sslpassword;
  return ssl;
}

const MODE_RANK = Object.freeze({ disable: 0, allow: 1, prefer: 2, require: 3, 'verify-ca': 4, 'verify-full': 5 });

/**
 * The libpq sslmode a node-postgres `ssl` value amounts to: false is disable, true is require
 * (node-postgres verifies nothing then), an object with `rejectUnauthorized: false` is require,
 * one with its own `checkServerIdentity` verify-ca, any other object verify-full.
 */
function modeOfSsl(ssl) {
  if (ssl === undefined || ssl === null) return undefined;
  if (ssl === false) return 'disable';
  if (ssl === true) return 'require';
  if (typeof ssl !== 'object') return undefined;
  if (ssl.rejectUnauthorized === false) return 'require';
  if (typeof ssl.checkServerIdentity === 'function') return 'verify-ca';
  return 'verify-full';
}

/**
 * A caller's node-postgres values as libpq keywords, for the core's final check: it merges them
 * (a weaker sslmode never replaces a stricter one) and applies the TLS policy to the result.
 */
function libpqOverrides(o) {
  const out = {};
  if (!o) return out;
  if (o.connectionString !== undefined) {
    throw configError("a 'connectionString' in the overrides would replace pgentra's checked parameters; give it to the Connector ({ connectionString }) instead");
  }
  const str = (v) => (v === null ? null : String(v));
  if (o.host !== undefined) out.host = str(o.host);
  if (o.port !== undefined) out.port = str(o.port);
  if (o.database !== undefined) out.dbname = str(o.database);
  if (o.user !== undefined) out.user = str(o.user);
  if (typeof o.password === 'string') out.password = o.password;
  const mode = modeOfSsl(o.ssl);
  if (mode !== undefined) out.sslmode = mode;
  return out;
}

/**
 * The `ssl` that leaves: the caller's own when it is at least as strict as the mode the core
 * decided (with the server name added for verify-full), else the core's.
 */
function finalSsl(p, theirs) {
  const ours = sslConfig(p.sslmode, p.extra, p.host);
  const mode = modeOfSsl(theirs);
  if (mode === undefined || typeof theirs !== 'object' || MODE_RANK[mode] < MODE_RANK[p.sslmode || 'require']) return ours;
  if (ours && ours.servername && !theirs.servername) return { ...theirs, servername: ours.servername };
  return theirs;
}

/** Other libpq keywords that node-postgres understands under its own names. */
function pgExtras(extra = {}) {
  const out = {};
  if (extra.application_name) out.application_name = extra.application_name;
  if (extra.options) out.options = extra.options;
  if (extra.connect_timeout && Number(extra.connect_timeout) > 0) {
    out.connectionTimeoutMillis = Number(extra.connect_timeout) * 1000;
  }
  if (extra.client_encoding) out.client_encoding = extra.client_encoding;
  return out;
}

// ---------------------------------------------------------------------------------------------
// The connector
// ---------------------------------------------------------------------------------------------

/**
 * One database configuration and its token cache: create one per process and share it.
 * Options win over the environment (`AZURE_POSTGRESQL_*`, or `options.prefix`).
 */
class Connector {
  #native;
  #token = "";
  // The core's refresh point for #token (ms since the epoch): until then the cache would hand
  // out this same token, so token() answers without calling into the addon.
  #until = 0;

  constructor(options) {
    const opts = nativeOptions(options);
    try {
      this.#native = new native.NativeConnector(opts);
    } catch (e) {
      throw fromNative(e);
    }
  }

  /** A current access token (cached, refreshed ahead of expiry). */
  token() {
    // Not an async function: a cached token costs one resolved promise, no extra ticks and,
    // before the core's refresh point, no call into the addon.
    if (Date.now() < this.#until) return Promise.resolve(this.#token);
    let t;
    try {
      const cached = this.#native.cachedToken();
      if (cached !== null) {
        [, this.#token, this.#until] = cached;
        return Promise.resolve(this.#token);
      }
      t = this.#native.token();
    } catch (e) {
      return Promise.reject(fromNative(e));
    }
    return typeof t === 'string' ? Promise.resolve(t) : t.catch((e) => { throw fromNative(e); });
  }

  /** Deprecated: the old name of `token()`, kept for one release (a DeprecationWarning, once). */
  getToken() {
    deprecated('getToken');
    return this.token();
  }

  /**
   * Host, port, database, user (configured or from the token), password (token), sslmode, extra.
   * `overrides` (libpq keywords; null removes one) are merged and checked by the core.
   */
  async params(overrides) {
    try {
      return await this.#native.params(overrides);
    } catch (e) {
      throw fromNative(e);
    }
  }

  /** The connection string with a current token: format libpq (default), uri, ado, jdbc, json, shell. */
  async connectionString(options) {
    const format = formatOf(options);
    try {
      return await this.#native.connectionString(format);
    } catch (e) {
      throw fromNative(e);
    }
  }

  /**
   * The same, synchronously. It blocks the event loop while a token is acquired, which only
   * happens when none is cached: prefer `connectionString()`.
   */
  connectionStringSync(options) {
    const format = formatOf(options);
    try {
      return this.#native.connectionStringSync(format);
    } catch (e) {
      throw fromNative(e);
    }
  }

  /** The current token's metadata (never the token): credential, expiry, refresh time, user. */
  async tokenInfo() {
    try {
      return await this.#native.tokenInfo();
    } catch (e) {
      throw fromNative(e);
    }
  }

  /** Drop the cached token: the next call acquires a new one. */
  invalidate() {
    this.#until = 0;
    this.#native.invalidate();
  }

  /**
   * Drop the cached token only if it is `rejected` (the token the server refused), so that many
   * connections refused together cause one new identity request. Returns whether it was dropped.
   */
  invalidateIf(rejected) {
    if (typeof rejected !== 'string') throw configError('invalidateIf(rejected) takes the refused token, a string');
    const dropped = this.#native.invalidateIf(rejected);
    if (dropped || this.#token === rejected) this.#until = 0;
    return dropped;
  }

  /**
   * A connect with `token` (the password this connector handed out) failed: whether to connect
   * once more, with a current token. The rule is the core's, the same in every language:
   * `sqlstate` is the server's SQLSTATE (node-postgres's `err.code`; null when there is none),
   * `usedPassword` whether the failed connection sent the password (null: unknown). A SQLSTATE
   * other than 28P01, or none with `usedPassword` false, is not a refusal of the token: nothing
   * is dropped. Otherwise the token is dropped unless another connection already replaced it
   * (many refusals at once cause one identity request), and the answer is true when the next
   * token will be another one; false when the cache keeps it (fetched right after another
   * refusal and refused again: the role is at fault, not the token) and with a password.
   */
  connectFailed(token, sqlstate, usedPassword) {
    if (typeof token !== 'string') throw configError('connectFailed(token, sqlstate) takes the token the failed connection sent, a string');
    if (sqlstate != null && typeof sqlstate !== 'string') throw configError("connectFailed: sqlstate must be the server's SQLSTATE (a string), null or undefined");
    if (usedPassword != null && typeof usedPassword !== 'boolean') throw configError('connectFailed: usedPassword must be a boolean, null or undefined');
    const retry = this.#native.connectFailed(token, sqlstate, usedPassword);
    if (retry) this.#until = 0;
    return retry;
  }

  /** How many token requests this connector has made. */
  get tokenRequests() {
    return this.#native.tokenRequests;
  }

  /** The resolved configuration before any token: never a password or token. */
  get config() {
    return this.#native.config();
  }

  /**
   * A `password` function for node-postgres: every new connection gets a current token. It
   * notes on the pg Client it serves which token it gave, so that a refusal can drop exactly
   * that token (see `pool()` and `connectClient()`), and tells `connectFailed()` when the server
   * answers with an error (a refused token is dropped there): a plain `pg.Pool` or Knex's
   * connection function then fails that one connection, and the next one gets a new token.
   */
  passwordFunction(overrides) {
    const self = this;
    return async function password() {
      const p = await self.params(overrides);
      if (typeof p.password !== 'string') {
        throw configError(`no password and no token for ${p.user || 'the user'}: configure a password or remove credential 'password'`);
      }
      // node-postgres calls `client.password()`: `this` is the Client, `this.connection` its
      // protocol connection, which emits the server's ErrorResponse as 'errorMessage'.
      if (this && typeof this === 'object') {
        this[HANDED] = p.password;
        const con = this.connection;
        if (con && typeof con.once === 'function') con.once('errorMessage', (msg) => self.#failed(msg, p.password));
      }
      return p.password;
    };
  }

  /**
   * After `err` from connecting `client` (a client this connector's password function served):
   * whether to connect once more, as `connectFailed()` decides for the token `client` was given.
   */
  refused(err, client) {
    return this.#failed(err, client && client[HANDED]);
  }

  /**
   * The Node integrations' way to `connectFailed()`: the SQLSTATE of `err` (or of the driver
   * error a framework wraps in `original`/`parent`) for the token `sent`. node-postgres reports
   * every server error with its SQLSTATE, so an error without one (a Node system error's
   * `code`, such as ECONNREFUSED, is none) came before the server judged the password.
   */
  #failed(err, sent) {
    if (typeof sent !== 'string' || !sent) return false;
    return this.connectFailed(sent, sqlstateOf(err), false);
  }

  /**
   * A `pg.Pool` (pass your `require('pg')`) whose every new connection gets a current token,
   * and which, when a connect fails and `connectFailed()` says so (the server refused the token
   * the cache holds), connects once more: `pool.query()` and `pool.connect()` recover without
   * the application calling `invalidate()`.
   */
  async pool(pg, overrides) {
    const connector = this;
    const config = await this.pgConfig(overrides);
    class Client extends pg.Client {
      connect(callback) {
        const attempt = super.connect().catch((err) => {
          if (connector.refused(err, this) && err && typeof err === 'object') err[RETRY] = true;
          throw err;
        });
        if (typeof callback !== 'function') return attempt;
        attempt.then(() => callback(), callback);
        return undefined;
      }
    }
    class Pool extends pg.Pool {
      connect(callback) {
        const once = () => super.connect();
        const attempt = once().catch((err) => {
          if (err && err[RETRY]) return once();
          throw err;
        });
        if (typeof callback !== 'function') return attempt;
        attempt.then((client) => callback(undefined, client, client.release), (err) => callback(err, undefined, () => {}));
        return undefined;
      }
    }
    return new Pool({ ...config, Client });
  }

  /**
   * A connected `pg.Client` (pass your `require('pg')`): if the connect fails and
   * `connectFailed()` says so (the server refused the cached token), a new client connects once
   * more.
   */
  async connectClient(pg, overrides) {
    const config = await this.pgConfig(overrides);
    const client = new pg.Client(config);
    try {
      await client.connect();
      return client;
    } catch (err) {
      if (!this.refused(err, client)) throw err;
    }
    const again = new pg.Client(config);
    await again.connect();
    return again;
  }

  /** True when tokens are used (no password configured). */
  get tokenMode() {
    return !this.config.passwordMode;
  }

  // `p` already holds the caller's host, port, database, user and sslmode, checked by the core.
  #pgConfigFrom(p, overrides, lib) {
    const { host, port, database, user, password, ssl, ...rest } = overrides || {};
    return {
      ...pgExtras(p.extra),
      ...rest,
      host: p.host,
      port: p.port,
      database: p.database,
      user: p.user,
      password: typeof password === 'function' || typeof password === 'string' ? password : this.passwordFunction(lib),
      ssl: finalSsl(p, ssl),
    };
  }

  /**
   * A config for `new pg.Client(...)` / `new pg.Pool(...)`: `password` is an async function, so
   * every new (pooled) connection gets a current token. Async because, when no user is
   * configured, the user comes from the token's claims (managed identity).
   */
  async pgConfig(overrides) {
    const lib = libpqOverrides(overrides);
    return this.#pgConfigFrom(await this.params(lib), overrides, lib);
  }

  /**
   * The same without waiting: needs the user to be configured (option `user`,
   * `<prefix>_USER`, or in the connection string) or a token already cached.
   */
  pgConfigSync(overrides) {
    const lib = libpqOverrides(overrides);
    let p;
    try {
      p = this.#native.settings(lib);
    } catch (e) {
      throw fromNative(e);
    }
    if (p.user || this.config.passwordMode) {
      return this.#pgConfigFrom(p, overrides, lib);
    }
    const c = this.config;
    try {
      p = this.#native.params(lib);
    } catch (e) {
      throw fromNative(e);
    }
    if (p && typeof p.then === 'function') {
      p.catch(() => {}); // the request goes on and fills the cache; its error surfaces later
      throw configError(
        `the database user is not configured, so it comes from the token's claims and no token is cached yet: use \`await pgConfig()\`, or set ${c.prefix}_USER (or the 'user' option)`,
      );
    }
    return this.#pgConfigFrom(p, overrides, lib);
  }

  /**
   * A Sequelize `beforeConnect` hook that puts the user and a current token on every connection.
   * On its first run it also makes that Sequelize instance (`this` in a hook) recover from a
   * refused token: when a connection fails, its SQLSTATE and the token it sent go to
   * `connectFailed()`, and the connection is made once more with a current token when it says so.
   */
  sequelizeHooks() {
    const connector = this;
    const fill = async (config) => {
      config.dialectOptions = { ...(config.dialectOptions || {}) };
      // Sequelize's own values go through the core's check with ours.
      const p = await this.params(libpqOverrides({
        host: config.host || undefined,
        port: config.port || undefined,
        database: config.database || undefined,
        user: config.username || undefined,
        ssl: config.dialectOptions.ssl,
      }));
      config.username = p.user;
      config.password = p.password;
      config.host = p.host;
      config.port = p.port;
      config.database = p.database;
      config.dialectOptions.ssl = finalSsl(p, config.dialectOptions.ssl);
      if (config.dialectOptions.application_name === undefined && p.extra.application_name) {
        config.dialectOptions.application_name = p.extra.application_name;
      }
    };
    return {
      async beforeConnect(config) {
        await fill(config);
        // Sequelize runs its hooks with `this` set to the Sequelize instance; its connection
        // manager's connect(config) is what the pool calls, right after this hook.
        const manager = this && this.connectionManager;
        if (!manager || typeof manager.connect !== 'function' || manager[RECOVERS]) return;
        const connect = manager.connect;
        manager.connect = async function connectOnce(cfg) {
          const sent = cfg.password;
          try {
            return await connect.call(this, cfg);
          } catch (err) {
            if (!connector.#failed(err, sent)) throw err;
          }
          await fill(cfg);
          return connect.call(this, cfg);
        };
        manager[RECOVERS] = true;
      },
    };
  }

  /** Options for `new Sequelize(options)`: dialect postgres, this connector's server, the hook. */
  sequelizeOptions(overrides = {}) {
    const c = this.config;
    const hook = this.sequelizeHooks().beforeConnect;
    const userHooks = overrides.hooks || {};
    const theirs = userHooks.beforeConnect;
    return {
      dialect: 'postgres',
      host: c.host,
      port: c.port,
      database: c.database,
      username: c.user,
      ...overrides,
      dialectOptions: { ssl: sslConfig(c.sslmode, c.extra, c.host), ...(overrides.dialectOptions || {}) },
      hooks: {
        ...userHooks,
        beforeConnect: theirs
          ? async function beforeConnect(config) {
              await hook.call(this, config);
              for (const f of Array.isArray(theirs) ? theirs : [theirs]) await f.call(this, config);
            }
          : hook,
      },
    };
  }

  /**
   * Knex's `connection`: an async function returning a fresh config. Its `password` is itself
   * an async function, so every new pooled connection gets a current token (knex reuses the
   * config object; a token rotation needs no new one).
   */
  knexConnection(overrides) {
    return () => this.pgConfig(overrides);
  }
}

// ---------------------------------------------------------------------------------------------
// Module-level API over a default connector from the environment
// ---------------------------------------------------------------------------------------------

let defaultInstance;

/** The default connector, created on first use from the environment (AZURE_POSTGRESQL_*). */
function defaultConnector() {
  if (!defaultInstance) defaultInstance = new Connector();
  return defaultInstance;
}

/** `(connector?, overrides?)` in either order: the connector defaults to defaultConnector(). */
function args(a, b) {
  const [connector, overrides] = a instanceof Connector ? [a, b] : [b, a];
  if (connector !== undefined && connector !== null && !(connector instanceof Connector)) {
    throw configError('expected a pgentra Connector');
  }
  if (overrides !== undefined && overrides !== null && typeof overrides !== 'object') {
    throw configError('expected an options object');
  }
  return { connector: connector || defaultConnector(), overrides: overrides || undefined };
}

async function withDefault(fn) {
  return fn(defaultConnector());
}

function sequelizeOptions(a, b) {
  const { connector, overrides } = args(a, b);
  return connector.sequelizeOptions(overrides);
}

function knexConnection(a, b) {
  const { connector, overrides } = args(a, b);
  return connector.knexConnection(overrides);
}

const sequelize = Object.freeze({
  /** `{ beforeConnect }` for Sequelize's `hooks` option. */
  hooks: (connector) => {
    if (connector !== undefined && connector !== null && !(connector instanceof Connector)) {
      throw configError('expected a pgentra Connector');
    }
    return (connector || defaultConnector()).sequelizeHooks();
  },
  /** Complete options for `new Sequelize(options)`: `(connector?, overrides?)`. */
  options: sequelizeOptions,
});

const knex = Object.freeze({
  /** An async `connection` function for `knex({ client: 'pg', connection })`: `(connector?, overrides?)`. */
  connection: knexConnection,
});

module.exports = {
  Connector,
  PgEntraError,
  defaultConnector,
  token: () => withDefault((c) => c.token()),
  /** Deprecated: the old name of `token()`. */
  getToken: () => withDefault((c) => c.getToken()),
  params: () => withDefault((c) => c.params()),
  pgConfig: (overrides) => withDefault((c) => c.pgConfig(overrides)),
  pgConfigSync: (overrides) => defaultConnector().pgConfigSync(overrides),
  pool: (pg, overrides) => withDefault((c) => c.pool(pg, overrides)),
  connectClient: (pg, overrides) => withDefault((c) => c.connectClient(pg, overrides)),
  connectionString: (options) => withDefault((c) => c.connectionString(options)),
  connectionStringSync: (options) => defaultConnector().connectionStringSync(options),
  tokenInfo: () => withDefault((c) => c.tokenInfo()),
  invalidate: () => defaultConnector().invalidate(),
  sslConfig,
  sequelize,
  sequelizeOptions,
  knex,
  knexConnection,
};
