'use strict';
// Sequelize and Knex against the private PostgreSQL, with tokens from the identity emulator.
// Run under the harness: tests/harness/with-harness.sh node/test.sh

const { test, describe } = require('node:test');
const assert = require('node:assert/strict');
const { Sequelize, QueryTypes } = require('sequelize');
const createKnex = require('knex');
const pg = require('pg');
const pgentra = require('..');
const { Connector } = pgentra;
const { libpq, rotate, revoke, stats } = require('../test-support/harness.js');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const identityRequests = async () => (await stats()).msi_requests;
const isRefusal = (e) => (e.original || e.parent || e).code === '28P01';

describe('Sequelize', () => {
  test('sequelizeOptions(): a query runs as pgentra-app over TLS', async () => {
    const c = new Connector({ connectionString: libpq() });
    const sequelize = new Sequelize(pgentra.sequelize.options(c, { logging: false, pool: { max: 2 } }));
    try {
      const rows = await sequelize.query(
        'select current_user as u, (select ssl from pg_stat_ssl where pid = pg_backend_pid()) as ssl',
        { type: QueryTypes.SELECT },
      );
      assert.deepEqual(rows, [{ u: 'pgentra-app', ssl: true }]);
      assert.equal(c.tokenRequests, 1);
    } finally {
      await sequelize.close();
    }
  });

  test('the beforeConnect hook on a hand-made Sequelize, and after a rotation', async () => {
    const c = new Connector({ connectionString: libpq() });
    const { host, port, database } = c.config;
    const seen = [];
    const sequelize = new Sequelize(database, undefined, undefined, {
      dialect: 'postgres',
      host,
      port,
      logging: false,
      pool: { max: 1, idle: 50, evict: 20 },
      dialectOptions: { ssl: pgentra.sslConfig('require') },
      hooks: {
        ...pgentra.sequelize.hooks(c),
        afterConnect: (_conn, config) => {
          seen.push(config.username);
        },
      },
    });
    try {
      const [first] = await sequelize.query('select current_user as u', { type: QueryTypes.SELECT });
      assert.equal(first.u, 'pgentra-app');
      await rotate();
      c.invalidate();
      await new Promise((r) => setTimeout(r, 200)); // the idle connection is evicted
      const [second] = await sequelize.query('select current_user as u', { type: QueryTypes.SELECT });
      assert.equal(second.u, 'pgentra-app');
      assert.equal(c.tokenRequests, 2);
      // Sequelize opens one connection for its version check, then one per pool slot.
      assert.ok(seen.length >= 2 && seen.every((u) => u === 'pgentra-app'), `connections: ${seen}`);
    } finally {
      await sequelize.close();
    }
  });

  test('a refused cached token is dropped and the connection made once more (one identity request)', async () => {
    const c = new Connector({ connectionString: libpq() });
    const sequelize = new Sequelize(pgentra.sequelize.options(c, { logging: false, pool: { max: 1, idle: 50, evict: 20 } }));
    try {
      const one = () => sequelize.query('select current_user as u', { type: QueryTypes.SELECT, plain: true });
      assert.equal((await one()).u, 'pgentra-app');
      const held = await c.token();
      await revoke(held); // the server refuses the token the cache still holds from now on
      await sleep(200); // the idle connection is evicted: the next query logs in again
      const before = await identityRequests();
      assert.equal((await one()).u, 'pgentra-app');
      assert.equal((await identityRequests()) - before, 1, 'one new token for the refusal');
      assert.notEqual(await c.token(), held);
    } finally {
      await sequelize.close();
    }
  });

  test('10 connects as a role that does not exist make at most 2 identity requests', async () => {
    const c = new Connector({ connectionString: libpq('user=no_such_role') });
    const sequelize = new Sequelize(pgentra.sequelize.options(c, { logging: false, pool: { max: 1 } }));
    try {
      const before = await identityRequests();
      for (let i = 0; i < 10; i++) await assert.rejects(sequelize.authenticate(), isRefusal);
      const n = (await identityRequests()) - before;
      assert.ok(n >= 1 && n <= 2, `10 failed connects made ${n} identity requests`);
    } finally {
      await sequelize.close();
    }
  });
});

/** Knex with pgentra's connection function and a pool of one that closes idle connections fast. */
const reapingKnex = (c) => createKnex({
  client: 'pg',
  connection: pgentra.knex.connection(c),
  pool: { min: 0, max: 1, idleTimeoutMillis: 50, reapIntervalMillis: 20 },
});

describe('Knex', () => {
  test('connection: an async function returning a fresh config', async () => {
    const c = new Connector({ connectionString: libpq() });
    const knex = reapingKnex(c);
    try {
      const r = await knex.raw('select current_user as u, (select ssl from pg_stat_ssl where pid = pg_backend_pid()) as ssl');
      assert.deepEqual(r.rows, [{ u: 'pgentra-app', ssl: true }]);
      const n = await knex.select(knex.raw('1 + 1 as two'));
      assert.deepEqual(n, [{ two: 2 }]);
      assert.equal(c.tokenRequests, 1);
      const pid = (await knex.raw('select pg_backend_pid() as pid')).rows[0].pid;
      // A forced rotation: the idle connection is reaped, the next one logs in with the new token.
      await rotate();
      c.invalidate();
      await c.token();
      await new Promise((resolve) => setTimeout(resolve, 200));
      const after = await knex.raw('select current_user as u, pg_backend_pid() as pid');
      assert.equal(after.rows[0].u, 'pgentra-app');
      assert.notEqual(after.rows[0].pid, pid, 'a new connection');
      assert.equal(c.tokenRequests, 2);
    } finally {
      await knex.destroy();
    }
  });

  test('connection function: a refused cached token fails one query and is dropped; the next query gets a new token', async () => {
    const c = new Connector({ connectionString: libpq() });
    const knex = reapingKnex(c);
    try {
      const user = async () => (await knex.raw('select current_user as u')).rows[0].u;
      assert.equal(await user(), 'pgentra-app');
      const held = await c.token();
      await revoke(held);
      await sleep(200); // the idle connection is reaped
      const before = await identityRequests();
      await assert.rejects(knex.raw('select 1'), isRefusal); // Knex gives no way to retry here
      assert.equal(await user(), 'pgentra-app');
      assert.equal((await identityRequests()) - before, 1, 'one new token, at the next connection');
    } finally {
      await knex.destroy();
    }
  });

  test('the module-level helper with the default connector', async () => {
    process.env.AZURE_POSTGRESQL_CONNECTIONSTRING = libpq();
    const knex = createKnex({ client: 'pg', connection: pgentra.knexConnection() });
    try {
      const r = await knex.raw('select current_user as u');
      assert.equal(r.rows[0].u, 'pgentra-app');
    } finally {
      await knex.destroy();
      delete process.env.AZURE_POSTGRESQL_CONNECTIONSTRING;
    }
  });

  test('connectionPool: pool(pg): a refused cached token is dropped and the connection made once more (one identity request)', async () => {
    const c = new Connector({ connectionString: libpq() });
    const pool = await c.pool(pg, { max: 1, idleTimeoutMillis: 20 });
    const knex = createKnex({ client: 'pg', connectionPool: pool });
    try {
      const user = async () => (await knex.raw('select current_user as u')).rows[0].u;
      assert.equal(await user(), 'pgentra-app');
      const held = await c.token();
      await revoke(held);
      await sleep(100); // the idle client is closed: the next query logs in again
      const before = await identityRequests();
      assert.equal(await user(), 'pgentra-app');
      assert.equal((await identityRequests()) - before, 1, 'one new token for the refusal');
      assert.notEqual(await c.token(), held);
    } finally {
      await knex.destroy();
      await pool.end();
    }
  });

  test('connectionPool: 10 connects as a role that does not exist make at most 2 identity requests', async () => {
    const c = new Connector({ connectionString: libpq('user=no_such_role') });
    const pool = await c.pool(pg, { max: 1 });
    const knex = createKnex({ client: 'pg', connectionPool: pool });
    try {
      const before = await identityRequests();
      for (let i = 0; i < 10; i++) await assert.rejects(knex.raw('select 1'), isRefusal);
      const n = (await identityRequests()) - before;
      assert.ok(n >= 1 && n <= 2, `10 failed connects made ${n} identity requests`);
    } finally {
      await knex.destroy();
      await pool.end();
    }
  });
});
