'use strict';
// Shared by the tests that need the harness (tests/harness/with-harness.sh): a private
// PostgreSQL with TLS and the identity emulator, on loopback in a network namespace.

const assert = require('node:assert/strict');

// Never let a code path probe the real metadata address (the namespace has no route anyway).
process.env.PGENTRA_IMDS_ENDPOINT = 'http://127.0.0.1:9';

const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const UAMI = '11111111-1111-1111-1111-111111111111';
const SP = '22222222-2222-2222-2222-222222222222';

function h(key) {
  const v = process.env[key];
  assert.ok(v, `${key} is not set: run these tests with tests/harness/with-harness.sh (node/test.sh does)`);
  return v;
}

function libpq(extra = '') {
  return `host=${h('PGENTRA_PG_HOST')} port=${h('PGENTRA_PG_PORT')} dbname=postgres sslmode=require ${extra}`.trim();
}

/** One request to the emulator's control endpoint (loopback only). */
async function control(method, path, body) {
  const base = h('PGENTRA_EMULATOR_HTTP').replace(/\/$/, '');
  const url = new URL(path, base + '/');
  assert.ok(['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname), `control endpoint ${url.hostname} is not loopback`);
  const res = await fetch(url, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  assert.ok(res.ok, `control ${path}: HTTP ${res.status} ${text}`);
  return text ? JSON.parse(text) : {};
}

const reset = () => control('POST', '/control/reset');
const rotate = () => control('POST', '/control/rotate');
const faults = (list) => control('POST', '/control/faults', list);
const stats = () => control('GET', '/control/stats');
/** The server refuses `token` from now on (the emulator answers its LDAP checks with 28P01). */
const revoke = (token) => control('POST', '/control/revoke', token);

module.exports = { TENANT, UAMI, SP, h, libpq, control, reset, rotate, faults, stats, revoke };
