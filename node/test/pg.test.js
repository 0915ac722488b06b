'use strict';
// node-postgres against the private PostgreSQL, with tokens from the identity emulator.
// Run under the harness: tests/harness/with-harness.sh node/test.sh

const { test, describe, after } = require('node:test');
const assert = require('node:assert/strict');
const util = require('node:util');
const pg = require('pg');
const pgentra = require('..');
const { Connector, PgEntraError } = pgentra;
const { TENANT, UAMI, SP, h, libpq, reset, rotate, faults, stats, revoke } = require('../test-support/harness.js');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

describe('node-postgres', () => {
  const pools = [];
  after(async () => {
    await Promise.all(pools.map((p) => p.end().catch(() => {})));
  });

  test('token follows the core past the refresh point: the old token at once, then the refreshed one', async () => {
    await reset();
    await faults([{ refresh_in: 1 }]);
    const c = new Connector({ connectionString: libpq() });
    const a = await c.token();
    await sleep(1100);
    await rotate();
    await faults([{ delay_ms: 200 }]);
    assert.equal(await c.token(), a, 'the valid token while the refresh runs in the background');
    await sleep(600);
    const b = await c.token();
    assert.notEqual(b, a, 'the refreshed token, not the copy held in JavaScript');
    assert.equal(c.tokenRequests, 2);
    await reset();
  });

  test('getToken, the old name of token(), still answers and warns once (DeprecationWarning)', async () => {
    const warnings = [];
    const on = (w) => {
      if (w.code === 'PGENTRA_DEP_GETTOKEN') warnings.push(w);
    };
    process.on('warning', on);
    try {
      const c = new Connector({ connectionString: libpq() });
      const t = await c.getToken();
      assert.equal(await c.getToken(), t);
      assert.equal(await c.token(), t);
      assert.equal(typeof pgentra.token, 'function');
      assert.equal(typeof pgentra.getToken, 'function');
      assert.equal(c.tokenRequests, 1);
      await new Promise((r) => setImmediate(r));
    } finally {
      process.off('warning', on);
    }
    assert.equal(warnings.length, 1, 'one warning per process');
    assert.equal(warnings[0].name, 'DeprecationWarning');
    assert.match(warnings[0].message, /use token\(\)/);
  });

  test('token returns a JWT-shaped token for the system-assigned identity; a cached read makes no request', async () => {
    const c = new Connector({ connectionString: libpq() });
    const t = await c.token();
    assert.equal(t.split('.').length, 3);
    assert.equal(c.tokenRequests, 1);
    assert.equal(await c.token(), t);
    assert.equal(c.tokenRequests, 1);
    // The fast path: a cached token is answered on the calling thread, without I/O and without
    // a turn of the event loop (a setImmediate callback would run first if any call went
    // through the thread pool). Its speed is measured in bench/, not here.
    let turned = false;
    setImmediate(() => { turned = true; });
    for (let i = 0; i < 10000; i++) assert.equal(await c.token(), t);
    assert.equal(turned, false, 'a cached token() waited for the event loop');
    assert.equal(c.tokenRequests, 1);
    const info = await c.tokenInfo();
    assert.equal(info.credential, 'managed-identity');
    assert.equal(info.user, 'pgentra-app');
    assert.ok(info.expiresOn > Date.now() / 1000);
    assert.ok(!JSON.stringify(info).includes(t));
  });

  test('tokenInfo acquires a token when none is cached (on the runtime, not a blocking call on it)', async () => {
    const c = new Connector({ connectionString: libpq() });
    const info = await c.tokenInfo();
    assert.equal(info.user, 'pgentra-app');
    assert.equal(c.tokenRequests, 1);
    c.invalidate();
    assert.equal((await c.tokenInfo()).credential, 'managed-identity');
    assert.equal(c.tokenRequests, 2);
  });

  test('a pg.Pool logs in as pgentra-app and survives a forced token rotation', async () => {
    const c = new Connector({ connectionString: libpq() });
    const config = await c.pgConfig({ max: 2, idleTimeoutMillis: 50 });
    assert.equal(config.user, 'pgentra-app');
    assert.equal(typeof config.password, 'function');
    assert.deepEqual(config.ssl, { rejectUnauthorized: false });
    const pool = new pg.Pool(config);
    pools.push(pool);
    const r = await pool.query('select current_user as u, ssl from pg_stat_ssl where pid = pg_backend_pid()');
    assert.equal(r.rows[0].u, 'pgentra-app');
    assert.equal(r.rows[0].ssl, true, 'the connection is encrypted');
    const first = await c.token();

    // Rotation: the server refuses every earlier token; the emulator mints a new one.
    await rotate();
    c.invalidate();
    const second = await c.token();
    assert.notEqual(second, first);

    // The idle client from before is closed by idleTimeoutMillis; a new pooled connection gets
    // the current token through the password function.
    await sleep(150);
    assert.equal(pool.idleCount, 0);
    const again = await pool.query('select current_user as u');
    assert.equal(again.rows[0].u, 'pgentra-app');
    assert.equal(pool.totalCount, 1);

    // The old token no longer logs in: the rotation was real.
    const stale = new pg.Client({ ...config, password: first });
    await assert.rejects(stale.connect(), /password authentication failed/);
    await stale.end().catch(() => {});
  });

  test('pool(): a refused cached token is dropped and the connection made once more (one identity request)', async () => {
    const c = new Connector({ connectionString: libpq() });
    const pool = await c.pool(pg, { max: 2, idleTimeoutMillis: 20 });
    pools.push(pool);
    assert.equal((await pool.query('select current_user as u')).rows[0].u, 'pgentra-app');
    const held = await c.token();
    await rotate(); // the token the cache holds is refused from now on
    await sleep(80); // the idle client is closed: the next query opens a new connection
    const before = c.tokenRequests;
    const r = await pool.query('select current_user as u');
    assert.equal(r.rows[0].u, 'pgentra-app');
    assert.equal(c.tokenRequests, before + 1, 'one new token for the refusal');
    assert.notEqual(await c.token(), held);
    // The callback form recovers the same way (a new connector: the core keeps a token that
    // was fetched after a refusal and is refused again within seconds; see REFUSAL_HOLD).
    const c2 = new Connector({ connectionString: libpq() });
    const pool2 = await c2.pool(pg, { max: 1, idleTimeoutMillis: 20 });
    pools.push(pool2);
    assert.equal((await pool2.query('select current_user as u')).rows[0].u, 'pgentra-app');
    await rotate();
    await sleep(80);
    const client = await new Promise((resolve, reject) => pool2.connect((err, cl) => (err ? reject(err) : resolve(cl))));
    assert.equal((await client.query('select current_user as u')).rows[0].u, 'pgentra-app');
    client.release();
    assert.equal(c2.tokenRequests, 2);
  });

  test('a plain pg.Pool with pgConfig(): a refused cached token fails one connection and is dropped', async () => {
    const c = new Connector({ connectionString: libpq() });
    const pool = new pg.Pool(await c.pgConfig({ max: 1, idleTimeoutMillis: 20 }));
    pools.push(pool);
    assert.equal((await pool.query('select current_user as u')).rows[0].u, 'pgentra-app');
    const held = await c.token();
    await revoke(held);
    await sleep(80); // the idle client is closed: the next query logs in again
    const before = (await stats()).msi_requests;
    // node-postgres has no retry: this query fails, and the password function drops the token.
    await assert.rejects(pool.query('select 1'), (e) => e.code === '28P01');
    assert.equal((await pool.query('select current_user as u')).rows[0].u, 'pgentra-app');
    assert.equal((await stats()).msi_requests - before, 1, 'one new token, at the next connection');
    assert.notEqual(await c.token(), held);
  });

  test('connectClient(): a refused cached token is dropped and a new client connects', async () => {
    const c = new Connector({ connectionString: libpq() });
    const first = await c.connectClient(pg);
    await first.end();
    await rotate();
    const before = c.tokenRequests;
    const client = await c.connectClient(pg);
    assert.equal((await client.query('select current_user as u')).rows[0].u, 'pgentra-app');
    await client.end();
    assert.equal(c.tokenRequests, before + 1);
    // Another error is not a refusal: nothing is dropped.
    assert.equal(c.refused(Object.assign(new Error('x'), { code: '57P01' }), {}), false);
  });

  test("connectFailed is the core's rule: a revoked cached token says retry for one request; other failures drop nothing", async () => {
    const c = new Connector({ connectionString: libpq() });
    const t0 = await c.token();
    const r0 = c.tokenRequests;
    const e0 = (await stats()).msi_requests;
    assert.equal(c.connectFailed(t0, '3D000'), false);
    assert.equal(c.connectFailed(t0, '28000', true), false);
    assert.equal(c.connectFailed(t0, null, false), false, 'no SQLSTATE and no password sent');
    assert.equal(await c.token(), t0);
    assert.equal(c.tokenRequests, r0);
    await revoke(t0);
    assert.equal(c.connectFailed(t0, '28P01'), true, 'a refusal of the cached token');
    assert.equal(c.connectFailed(t0, '28P01'), true, 'a second connection refused with it reconnects too');
    assert.equal(c.tokenRequests, r0, 'connectFailed makes no request');
    const t1 = await c.token();
    assert.notEqual(t1, t0);
    assert.equal(c.tokenRequests, r0 + 1);
    assert.equal((await stats()).msi_requests - e0, 1);
    for (const [args, re] of [[[1, '28P01'], /token/], [[t1, 28], /sqlstate/], [[t1, '28P01', 'yes'], /usedPassword/]]) {
      assert.throws(() => c.connectFailed(...args), (e) => e instanceof PgEntraError && e.code === 'PGENTRA_CONFIG' && re.test(e.message));
    }
    const secret = new Connector({ connectionString: 'host=h port=5432 dbname=d user=u password=p sslmode=require' });
    assert.equal(secret.connectFailed('p', '28P01'), false);
    assert.equal(secret.tokenRequests, 0);
  });

  test('several pooled connections at once each get a current token', async () => {
    const c = new Connector({ connectionString: libpq() });
    const pool = new pg.Pool(await c.pgConfig({ max: 4 }));
    pools.push(pool);
    const clients = await Promise.all([1, 2, 3, 4].map(() => pool.connect()));
    const users = await Promise.all(clients.map((cl) => cl.query('select current_user as u').then((r) => r.rows[0].u)));
    clients.forEach((cl) => cl.release());
    assert.deepEqual(users, ['pgentra-app', 'pgentra-app', 'pgentra-app', 'pgentra-app']);
    assert.equal(c.tokenRequests, 1);
  });

  test('verify-full with sslrootcert verifies the server against that CA', async () => {
    const c = new Connector({ connectionString: libpq(`sslmode=verify-full sslrootcert=${h('PGENTRA_PG_CA')}`) });
    const config = await c.pgConfig();
    assert.equal(config.ssl.rejectUnauthorized, true);
    assert.ok(Buffer.isBuffer(config.ssl.ca));
    const client = new pg.Client(config);
    await client.connect();
    try {
      assert.equal((await client.query('select current_user as u')).rows[0].u, 'pgentra-app');
    } finally {
      await client.end();
    }
    // The same CA does not vouch for a wrong host name under verify-full...
    const wrongName = new pg.Client({ ...config, ssl: { ...config.ssl, servername: 'not-the-server.example' } });
    await assert.rejects(wrongName.connect(), /Hostname\/IP does not match|altnames/);
    await wrongName.end().catch(() => {});
    // ...while verify-ca checks the chain only.
    const ca = new Connector({ connectionString: libpq(`sslmode=verify-ca sslrootcert=${h('PGENTRA_PG_CA')}`) });
    const caConfig = await ca.pgConfig();
    const caClient = new pg.Client({ ...caConfig, ssl: { ...caConfig.ssl, servername: 'not-the-server.example' } });
    await caClient.connect();
    await caClient.end();
  });

  test('pgConfigSync works once the user is known and refuses clearly before', async () => {
    // A delayed identity response, so that no token can be cached when pgConfigSync() runs.
    await faults([{ delay_ms: 200 }]);
    const c = new Connector({ connectionString: libpq() });
    assert.throws(() => c.pgConfigSync(), (e) => e instanceof PgEntraError && e.code === 'PGENTRA_CONFIG' && /await pgConfig\(\)/.test(e.message));
    await c.token();
    const config = c.pgConfigSync();
    assert.equal(config.user, 'pgentra-app');
    const configured = new Connector({ connectionString: libpq('user=pgentra-app') });
    assert.equal(configured.pgConfigSync().user, 'pgentra-app');
    assert.equal(configured.tokenRequests, 0, 'a configured user needs no token up front');
    const client = new pg.Client(configured.pgConfigSync());
    await client.connect();
    assert.equal((await client.query('select current_user as u')).rows[0].u, 'pgentra-app');
    await client.end();
  });

  test('module-level functions use a default connector from the environment', async () => {
    process.env.AZURE_POSTGRESQL_CONNECTIONSTRING = `Server=${h('PGENTRA_PG_HOST')};Port=${h('PGENTRA_PG_PORT')};Database=postgres;Ssl Mode=Require;`;
    try {
      const t = await pgentra.token();
      assert.ok(t.length > 100);
      assert.equal(pgentra.defaultConnector().tokenRequests, 1);
      const uri = await pgentra.connectionString({ format: 'uri' });
      assert.ok(uri.startsWith('postgresql://pgentra-app:'), 'user from the token claims');
      assert.ok(uri.includes(encodeURIComponent(t)) || uri.includes(t));
      assert.equal(pgentra.connectionStringSync({ format: 'libpq' }), await pgentra.connectionString());
      const client = new pg.Client(await pgentra.pgConfig());
      await client.connect();
      assert.equal((await client.query('select current_user as u')).rows[0].u, 'pgentra-app');
      await client.end();
      // A URL-only tool (Prisma, Drizzle) gets the same login from the URI.
      // (node-postgres's URL parser treats sslmode=require as verify-full, and warns about it;
      // here the certificate is verified against the harness's private CA. Azure's server
      // certificates chain to public roots.)
      const verified = uri.replace('sslmode=require', 'sslmode=verify-full');
      const fromUri = new pg.Client({ connectionString: `${verified}&sslrootcert=${encodeURIComponent(h('PGENTRA_PG_CA'))}` });
      await fromUri.connect();
      assert.equal((await fromUri.query('select current_user as u')).rows[0].u, 'pgentra-app');
      await fromUri.end();
      assert.equal(pgentra.defaultConnector().tokenRequests, 1);
    } finally {
      delete process.env.AZURE_POSTGRESQL_CONNECTIONSTRING;
    }
  });

  test('a slow identity endpoint does not block the event loop', async () => {
    await reset();
    await faults([{ delay_ms: 400 }]);
    const c = new Connector({ connectionString: libpq() });
    let ticks = 0;
    let maxGap = 0;
    let last = performance.now();
    const timer = setInterval(() => {
      const now = performance.now();
      maxGap = Math.max(maxGap, now - last);
      last = now;
      ticks++;
    }, 10);
    const t0 = performance.now();
    try {
      const token = await c.token();
      assert.ok(token.length > 100);
    } finally {
      clearInterval(timer);
    }
    const elapsed = performance.now() - t0;
    assert.ok(elapsed >= 380, `the fault delayed the request (${elapsed.toFixed(0)} ms)`);
    assert.ok(ticks >= 15, `the timer kept firing during token: ${ticks} ticks in ${elapsed.toFixed(0)} ms`);
    assert.ok(maxGap < 150, `no long stall of the event loop (max gap ${maxGap.toFixed(0)} ms)`);
    assert.equal((await stats()).msi_requests, 1);
  });

  test('64 concurrent token() on a fresh connector make exactly one identity request', async () => {
    await reset();
    const before = (await stats()).msi_requests;
    assert.equal(before, 0);
    const c = new Connector({ connectionString: libpq(), clientId: UAMI });
    const tokens = await Promise.all(Array.from({ length: 64 }, () => c.token()));
    assert.equal(new Set(tokens).size, 1);
    assert.equal((await stats()).msi_requests - before, 1);
    assert.equal(c.tokenRequests, 1);
    const p = await c.params();
    assert.equal(p.user, 'pgentra-uami');
  });

  test('a wrong client secret rejects with AADSTS7000215 and never shows the secret', async () => {
    await reset();
    for (const secret of ['wrong', 'Wr0ng~Secret-Value.123']) {
      const c = new Connector({
        connectionString: libpq('user=aad_pgentra_sp'),
        clientId: SP,
        tenantId: TENANT,
        clientSecret: secret,
        authorityHost: h('AZURE_AUTHORITY_HOST'),
      });
      const t0 = performance.now();
      const err = await c.token().then(
        () => assert.fail('expected a rejection'),
        (e) => e,
      );
      assert.ok(performance.now() - t0 < 5000, 'a permanent failure is not retried');
      assert.ok(err instanceof PgEntraError);
      assert.ok(err instanceof Error);
      assert.equal(err.code, 'PGENTRA_IDENTITY_SERVICE');
      assert.equal(err.serviceCode, 'AADSTS7000215');
      const shown = [err.message, err.stack, String(err), util.inspect(err), JSON.stringify(err), util.inspect(c)].join('\n');
      assert.ok(!shown.includes(secret), `the secret leaked: ${shown}`);
      const viaParams = await c.pgConfig().then(
        () => assert.fail('expected a rejection'),
        (e) => e,
      );
      assert.equal(viaParams.serviceCode, 'AADSTS7000215');
    }
    // pgConfig() right after the failure gets the remembered error (3 s), with no request.
    assert.equal((await stats()).entra_requests, 2);
  });

  test('a token is never sent without TLS: sslmode=disable is a TLS policy error', async () => {
    const c = new Connector({ connectionString: libpq().replace('sslmode=require', 'sslmode=disable') });
    await assert.rejects(c.token().then(() => c.pgConfig()), (e) => e instanceof PgEntraError && e.code === 'PGENTRA_TLS_POLICY');
    await assert.rejects(c.connectionString(), (e) => e.code === 'PGENTRA_TLS_POLICY' && /sslmode=disable/.test(e.message));
  });
});
