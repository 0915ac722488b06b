'use strict';
// Secure by default (issue #13): verified TLS for Azure server names, caller values that can
// never lower the mode, and no secret in `connector.config`. Azure-style names resolve to
// 127.0.0.1 in the test namespace (tests/harness/netns.sh); the harness's test CA stands in for
// Azure's roots (SSL_CERT_FILE). Run under the harness: node/test.sh.

const { test, describe } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const util = require('node:util');
const pg = require('pg');
const { Connector } = require('..');
const { h } = require('../test-support/harness.js');

const azure = (hostVar = 'PGENTRA_TEST_AZURE_HOST', port = h('PGENTRA_PG_PORT')) =>
  `host=${h(hostVar)} port=${port} dbname=postgres sslmode=require`;

/** A fake PostgreSQL that declines TLS and asks for a cleartext password. */
function fakeServer() {
  const events = [];
  const server = net.createServer((s) => {
    events.push('connection');
    let buf = Buffer.alloc(0);
    let stage = 0;
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        if (stage < 2) {
          if (buf.length < 4) return;
          const n = buf.readUInt32BE(0);
          if (buf.length < n) return;
          const code = buf.readUInt32BE(4);
          buf = buf.subarray(n);
          if (code === 80877103 || code === 80877104) {
            s.write('N');
            continue;
          }
          events.push('startup');
          stage = 2;
          s.write(Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 3])); // AuthenticationCleartextPassword
        } else {
          if (buf.length < 1) return;
          if (buf[0] === 0x70) events.push('password');
          s.destroy();
          return;
        }
      }
    });
    s.on('error', () => {});
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, events, port: server.address().port })));
}

describe('TLS policy', () => {
  test('an Azure name gets verify-full with the server name, and node-postgres logs in verified', async () => {
    const c = new Connector({ connectionString: azure() });
    const config = await c.pgConfig();
    assert.equal(config.ssl.rejectUnauthorized, true);
    assert.equal(config.ssl.servername, h('PGENTRA_TEST_AZURE_HOST'));
    assert.ok(Buffer.isBuffer(config.ssl.ca));
    const client = new pg.Client(config);
    await client.connect();
    try {
      assert.equal((await client.query('select current_user as u')).rows[0].u, 'pgentra-app');
    } finally {
      await client.end();
    }
    assert.equal(c.config.sslmode, 'verify-full');
    assert.equal(c.config.extra.sslrootcert, h('SSL_CERT_FILE'));
    // A weaker `ssl` from the caller does not replace the verified one.
    for (const ssl of [false, true, { rejectUnauthorized: false }]) {
      const cfg = await c.pgConfig({ ssl });
      assert.equal(cfg.ssl.rejectUnauthorized, true, util.inspect(ssl));
      assert.equal(cfg.ssl.servername, h('PGENTRA_TEST_AZURE_HOST'));
    }
    // The synchronous form applies the same policy.
    assert.equal(new Connector({ connectionString: azure(), user: 'pgentra-app' }).pgConfigSync({ ssl: false }).ssl.rejectUnauthorized, true);
  });

  test('a server whose certificate does not carry the name is refused before any password', async () => {
    const c = new Connector({ connectionString: azure('PGENTRA_TEST_WRONG_HOST') });
    const client = new pg.Client(await c.pgConfig());
    await assert.rejects(client.connect(), /Hostname\/IP does not match|altnames|certificate/);
    await client.end().catch(() => {});
    // Moving the host by an override is checked the same way.
    const local = new Connector({ connectionString: `host=127.0.0.1 port=${h('PGENTRA_PG_PORT')} dbname=postgres sslmode=require` });
    const moved = await local.pgConfig({ host: h('PGENTRA_TEST_WRONG_HOST') });
    assert.equal(moved.ssl.rejectUnauthorized, true);
    const client2 = new pg.Client(moved);
    await assert.rejects(client2.connect(), /Hostname\/IP does not match|altnames|certificate/);
    await client2.end().catch(() => {});
  });

  test('ssl: false from the caller cannot send the token to a server without TLS', async () => {
    const fake = await fakeServer();
    try {
      const c = new Connector({ connectionString: `host=127.0.0.1 port=${fake.port} dbname=postgres sslmode=require` });
      for (const ssl of [false, undefined]) {
        const config = await c.pgConfig({ ssl });
        assert.notEqual(config.ssl, false);
        const client = new pg.Client(config);
        await assert.rejects(client.connect(), /does not support SSL|SSL|ECONNRESET/);
        await client.end().catch(() => {});
      }
      await assert.rejects(c.pgConfig({ connectionString: 'postgresql://x/y?sslmode=disable' }), /connectionString/);
      assert.ok(!fake.events.includes('password'), fake.events.join(','));
    } finally {
      fake.server.close();
    }
  });

  test('connector.config holds no secret', () => {
    const c = new Connector({
      connectionString: 'host=h port=5432 dbname=d user=u sslpassword=hunter2-key-passphrase sslkey=/k.pem sslmode=require',
      password: 'static-password-xyz',
    });
    const shown = JSON.stringify(c.config) + util.inspect(c.config) + util.inspect(c);
    assert.ok(!shown.includes('hunter2'), shown);
    assert.ok(!shown.includes('static-password-xyz'), shown);
    assert.equal(c.config.extra.sslkey, '/k.pem');
  });

  test('invalidateIf drops only the refused token, once', async () => {
    const c = new Connector({ connectionString: `host=127.0.0.1 port=${h('PGENTRA_PG_PORT')} dbname=postgres sslmode=require` });
    const t = await c.token();
    assert.equal(c.invalidateIf('not-the-token'), false);
    assert.equal(await c.token(), t);
    assert.equal(c.invalidateIf(t), true);
    assert.equal(c.invalidateIf(t), false);
    await c.token();
    assert.equal(c.tokenRequests, 2);
  });
});
