'use strict';
// A worker process for node/test/shared_cache.test.js (started with child_process.fork or
// cluster.fork, sharing set by its environment): it creates its own connector, waits for the
// parent's "go", gets a token (and, when asked, logs in to PostgreSQL with it) and reports.

const cluster = require('node:cluster');
const crypto = require('node:crypto');
const pg = require('pg');
const { Connector, PgEntraError } = require('..');

const send = (m) => (cluster.isWorker ? cluster.worker.send(m) : process.send(m));

async function run() {
  const c = new Connector({ connectionString: process.env.SHARED_TEST_LIBPQ, credential: 'managed-identity', timeoutMs: 10000 });
  if (process.env.SHARED_TEST_GATE === '1') {
    send({ ready: true });
    await new Promise((resolve) => process.once('message', resolve));
  }
  try {
    const token = await c.token();
    let user = null;
    if (process.env.SHARED_TEST_LOGIN === '1') {
      const client = new pg.Client(await c.pgConfig());
      await client.connect();
      user = (await client.query('select current_user as u')).rows[0].u;
      await client.end();
    }
    // A digest, not the token: a failed assertion prints the report.
    const digest = crypto.createHash('sha256').update(token).digest('hex').slice(0, 16);
    send({ pid: process.pid, token: digest, requests: c.tokenRequests, user });
  } catch (e) {
    if (!(e instanceof PgEntraError)) throw e;
    send({ pid: process.pid, error: e.constructor.name, code: e.code, serviceCode: e.serviceCode ?? null, message: e.message });
  }
}

run().then(
  () => process.disconnect(),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
