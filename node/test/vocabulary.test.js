'use strict';
// The root README's "One vocabulary" table (issue #19): every name in the Node.js column exists
// on the real API with the kind of member the cell gives (`name()`: a method, `.name`: a
// property), and the old names it calls deprecated still answer and warn (DeprecationWarning).
// Run under the harness: tests/harness/with-harness.sh node/test.sh

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const pgentra = require('..');
const { Connector, PgEntraError } = pgentra;
const { libpq } = require('../test-support/harness.js');

const README = path.join(__dirname, '..', '..', 'README.md');

/** concept -> the column's cell, read from the table under "### One vocabulary". */
function column(name) {
  const lines = fs.readFileSync(README, 'utf8').split('\n');
  const start = lines.indexOf('### One vocabulary');
  assert.ok(start >= 0, 'README.md has no "### One vocabulary" section');
  const rows = [];
  for (const l of lines.slice(start + 1)) {
    if (l.startsWith('|')) rows.push(l.trim().replace(/^\||\|$/g, '').split('|').map((c) => c.trim()));
    else if (rows.length) break;
  }
  const col = rows[0].indexOf(name);
  assert.ok(col > 0, `no ${name} column in ${rows[0].join(', ')}`);
  return new Map(rows.slice(2).map((r) => [r[0], r[col]]));
}

/**
 * The code spans of one cell. `take(span)` says the test checks that span (it must be there);
 * `done()` fails on a span nobody took, so a name added to the table needs a check here.
 */
function cell(table, concept) {
  const text = table.get(concept);
  assert.ok(text !== undefined, `no row "${concept}"`);
  const spans = [...text.matchAll(/`([^`]+)`/g)].map((m) => m[1]);
  const left = new Set(spans);
  return {
    text,
    take(span) {
      assert.ok(spans.includes(span), `"${concept}": the Node.js cell "${text}" does not name \`${span}\``);
      left.delete(span);
      return span;
    },
    done() {
      assert.deepEqual([...left], [], `"${concept}": the Node.js cell names spans this test does not check`);
    },
  };
}

/** `name()` or `name(args)` must be a method of proto; `.name` a getter (a property). */
function member(proto, span) {
  const m = /^(\.)?([A-Za-z_]\w*)(\(.*\))?$/.exec(span);
  assert.ok(m && !(m[1] && m[3]), `\`${span}\` is neither \`name()\` nor \`.name\``);
  const name = m[2];
  const d = Object.getOwnPropertyDescriptor(proto, name);
  assert.ok(d, `${name} is not defined on ${proto.constructor.name}`);
  if (m[3]) assert.equal(typeof d.value, 'function', `${name} should be a method`);
  else assert.ok(d.get && !d.set && d.value === undefined, `${name} should be a read-only property (a getter)`);
  return name;
}

/** Runs f; returns the DeprecationWarnings it emitted with the given code. */
async function warnings(code, f) {
  const seen = [];
  const on = (w) => { if (w.code === code) seen.push(w); };
  process.on('warning', on);
  try {
    await f();
    await new Promise((r) => setImmediate(r));
  } finally {
    process.off('warning', on);
  }
  return seen;
}

test('the Node.js column names members that exist, of the kind it says', async () => {
  const t = column('Node.js');
  const c = new Connector({ connectionString: libpq() });

  let x = cell(t, 'token');
  assert.equal(typeof await c[member(Connector.prototype, x.take('token()'))](), 'string');
  // The deprecated old name: still answers, warns once per process (DeprecationWarning).
  assert.match(x.text, /`getToken\(\)`: deprecated, DeprecationWarning once/);
  const old = member(Connector.prototype, x.take('getToken()'));
  const seen = await warnings('PGENTRA_DEP_GETTOKEN', async () => {
    assert.equal(await c[old](), await c.token());
    assert.equal(await c[old](), await c.token());
  });
  assert.equal(seen.length, 1, 'one DeprecationWarning');
  assert.equal(seen[0].name, 'DeprecationWarning');
  x.done();

  x = cell(t, 'connection string');
  assert.equal(member(Connector.prototype, x.take('connectionString({ format })')), 'connectionString');
  assert.match(await c.connectionString({ format: 'uri' }), /^postgresql:\/\//);
  x.done();

  x = cell(t, 'database name');
  assert.match(x.take('database'), /^database$/);
  assert.match(x.text, /node-postgres's name wins/);
  const cfg = await new Connector({ connectionString: libpq(), database: 'postgres' }).pgConfig();
  assert.equal(cfg.database, 'postgres');
  assert.equal(cfg.dbname, undefined);
  x.done();

  x = cell(t, 'invalidate if still cached');
  const inv = member(Connector.prototype, x.take('invalidateIf(rejected)'));
  assert.equal(c[inv]('not the cached token'), false);
  assert.equal(c[inv](await c.token()), true);
  x.done();

  x = cell(t, 'error kind');
  let err;
  try { new Connector({ connectionString: 'host=h port=70000' }); } catch (e) { err = e; }
  assert.ok(err instanceof PgEntraError);
  // An own data property of each error (node's `err.code` convention), one of PgEntraError.codes.
  const kind = x.take('.code').slice(1);
  assert.equal(Object.getOwnPropertyDescriptor(err, kind).value, x.take('PGENTRA_CONFIG'));
  assert.ok(Object.values(PgEntraError.codes).includes(err[kind]));
  x.take('err.code');
  x.done();

  x = cell(t, 'service code (`AADSTS…`)');
  const sc = x.take('.serviceCode').slice(1);
  assert.ok(Object.hasOwn(err, sc), 'serviceCode is a property of every PgEntraError');
  assert.equal(err[sc], undefined, 'no service code on a configuration error');
  x.done();

  x = cell(t, 'identity request count');
  assert.equal(c[member(Connector.prototype, x.take('.tokenRequests'))], 1);
  x.done();

  x = cell(t, 'timeout (one token acquisition)');
  const opt = x.take('timeoutMs');
  assert.match(x.text, /milliseconds/);
  x.take('connectionTimeoutMillis'); // node-postgres's own option, named as the precedent
  new Connector({ connectionString: libpq(), [opt]: 2500 });
  assert.throws(() => new Connector({ connectionString: libpq(), [opt]: 'soon' }),
    (e) => e.code === 'PGENTRA_CONFIG' && e.message.includes(`'${opt}'`));
  x.done();
});
