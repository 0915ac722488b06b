'use strict';
// The shared token cache (issue #16) through the Node.js binding, with sharing ON as in
// production: worker processes started as Node.js servers start them (child_process.fork, a
// cluster) share one identity request. The harness keeps sharing off for the rest of this
// suite (PGENTRA_SHARED_CACHE=0); these tests turn it on for their own processes only, with a
// fresh private cache folder under $PGENTRA_TEST_DIR, and count requests at the emulator.
// Run under the harness: tests/harness/with-harness.sh node/test.sh

const { test, describe, beforeEach, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const childProcess = require('node:child_process');
const cluster = require('node:cluster');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { Connector } = require('..');
const { h, libpq, reset, faults, stats } = require('../test-support/harness.js');

const WORKER = path.join(__dirname, '..', 'test-support', 'shared-worker.js');
const WORKERS = 8;
const requests = async () => (await stats()).msi_requests;

let folder;
let n = 0;

function env(switchValue = '1', extra = {}) {
  return { ...process.env, PGENTRA_SHARED_CACHE: switchValue, PGENTRA_CACHE_DIR: folder, SHARED_TEST_LIBPQ: libpq(), ...extra };
}

/** The message a worker reports, after it exited cleanly. */
function report(child, onReady) {
  return new Promise((resolve, reject) => {
    let got = null;
    child.on('message', (m) => {
      if (m.ready) onReady(child);
      else got = m;
    });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 && got ? resolve(got) : reject(new Error(`worker exited with ${code}: ${JSON.stringify(got)}`))));
  });
}

/** One fresh process with its own connector (a later deploy, a worker started later). */
function freshProcess(switchValue = '1') {
  return report(childProcess.fork(WORKER, { env: env(switchValue) }));
}

describe('the shared token cache across processes (sharing on)', () => {
  beforeEach(async () => {
    folder = path.join(h('PGENTRA_TEST_DIR'), `node-shared-${process.pid}-${n++}`);
    fs.rmSync(folder, { recursive: true, force: true });
    fs.mkdirSync(folder, { mode: 0o700 });
    await reset();
  });
  afterEach(async () => {
    await reset();
    fs.rmSync(folder, { recursive: true, force: true });
  });

  test(`${WORKERS} cold child_process.fork workers make one request; a later process none`, async () => {
    await faults([{ delay_ms: 300 }]); // the first request is slow: the others ask while it runs
    let ready = 0;
    const children = [];
    const openGate = () => {
      if (++ready === WORKERS) for (const c of children) c.send('go');
    };
    for (let i = 0; i < WORKERS; i++) {
      children.push(childProcess.fork(WORKER, { env: env('1', { SHARED_TEST_GATE: '1', SHARED_TEST_LOGIN: i === 0 ? '1' : '0' }) }));
    }
    const got = await Promise.all(children.map((c) => report(c, openGate)));
    assert.equal(new Set(got.map((g) => g.pid)).size, WORKERS);
    assert.equal(await requests(), 1, `${WORKERS} workers made ${await requests()} identity requests`);
    assert.equal(new Set(got.map((g) => g.token)).size, 1, 'every worker got the same token');
    assert.equal(got.reduce((s, g) => s + g.requests, 0), 1);
    assert.deepEqual(got.map((g) => g.user).filter(Boolean), ['pgentra-app'], 'a worker logged in with the shared token');
    // A warm cache costs nothing.
    const later = await freshProcess();
    assert.equal(later.token, got[0].token);
    assert.equal(later.requests, 0);
    assert.equal(await requests(), 1);
  });

  test('cluster workers started after the primary fetched make no request', async () => {
    // The primary warms with sharing on (its own connector), then starts its workers.
    const saved = [process.env.PGENTRA_SHARED_CACHE, process.env.PGENTRA_CACHE_DIR];
    process.env.PGENTRA_SHARED_CACHE = '1';
    process.env.PGENTRA_CACHE_DIR = folder;
    let primary;
    try {
      primary = new Connector({ connectionString: libpq(), credential: 'managed-identity' });
    } finally {
      process.env.PGENTRA_SHARED_CACHE = saved[0];
      process.env.PGENTRA_CACHE_DIR = saved[1];
    }
    const token = crypto.createHash('sha256').update(await primary.token()).digest('hex').slice(0, 16);
    assert.equal(await requests(), 1);
    cluster.setupPrimary({ exec: WORKER, silent: false });
    const workers = [];
    for (let i = 0; i < WORKERS; i++) workers.push(cluster.fork(env('1', { SHARED_TEST_LOGIN: i === 0 ? '1' : '0' })));
    const got = await Promise.all(workers.map((w) => report(w)));
    for (const g of got) {
      assert.equal(g.token, token, 'the primary\'s token');
      assert.equal(g.requests, 0);
    }
    assert.equal(got[0].user, 'pgentra-app');
    assert.equal(await requests(), 1, `${WORKERS} cluster workers made ${(await requests()) - 1} identity requests`);
  });

  test('PGENTRA_SHARED_CACHE=0 (false, no, off) in a worker is honoured: it asks for itself', async () => {
    const warm = await freshProcess();
    assert.equal(warm.requests, 1);
    for (const spelling of ['0', 'false', 'no', 'OFF']) {
      const off = await freshProcess(spelling);
      assert.equal(off.requests, 1, `PGENTRA_SHARED_CACHE=${spelling}`);
    }
    assert.equal(await requests(), 5);
    const on = await freshProcess();
    assert.equal(on.token, warm.token);
    assert.equal(on.requests, 0);
    assert.equal(await requests(), 5);
  });

  test('a failure seen by one process is the next process\'s answer, with the same error code', async () => {
    // Throttled, Retry-After 30 s (beyond the 10 s timeout: the process gives up at once).
    await faults([{ status: 429, retry_after: 30 }]);
    const first = await freshProcess();
    assert.equal(first.error, 'PgEntraError', JSON.stringify(first));
    assert.equal(first.code, 'PGENTRA_IDENTITY_SERVICE');
    assert.equal(await requests(), 1);
    const second = await freshProcess();
    assert.equal(await requests(), 1, 'answered from the shared failure');
    assert.equal(second.error, 'PgEntraError');
    assert.equal(second.code, first.code);
    assert.equal(second.serviceCode, first.serviceCode);
    assert.match(second.message, /another process's request/);
    const off = await freshProcess('0');
    assert.equal(off.requests, 1, 'switched off, a process asks for itself');
    assert.equal(await requests(), 2);
  });
});
