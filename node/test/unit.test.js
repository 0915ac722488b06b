'use strict';
// Tests that need neither PostgreSQL nor the identity emulator: configuration errors, the
// conformance vectors, the sslmode mapping, the ESM entry point.

const { test, describe } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const pgentra = require('..');
const { Connector, PgEntraError } = pgentra;

const VECTORS = path.join(__dirname, '..', '..', 'tests', 'vectors', 'render.json');

// Keep the machine's own variables out of these tests.
for (const k of Object.keys(process.env)) {
  if (/^(AZURE_POSTGRESQL|Azure_POSTGRESQL|PGENTRA_PREFIX|PGENTRA_CREDENTIAL|PGENTRA_SCOPE)/.test(k)) delete process.env[k];
}

const isConfigError = (pattern) => (e) => {
  assert.ok(e instanceof PgEntraError, `not a PgEntraError: ${e}`);
  assert.ok(e instanceof Error);
  assert.equal(e.name, 'PgEntraError');
  assert.equal(e.code, 'PGENTRA_CONFIG');
  assert.equal(e.serviceCode, undefined);
  assert.match(e.message, pattern);
  return true;
};

describe('errors', () => {
  test('PgEntraError.codes lists one code per core error kind', () => {
    assert.deepEqual(Object.values(PgEntraError.codes), [
      'PGENTRA_CONFIG',
      'PGENTRA_CREDENTIAL',
      'PGENTRA_IDENTITY_SERVICE',
      'PGENTRA_NETWORK',
      'PGENTRA_TLS_POLICY',
      'PGENTRA_DATABASE',
      'PGENTRA_INTERNAL',
    ]);
  });

  test('a bad port in the connection string throws PGENTRA_CONFIG naming the key', () => {
    assert.throws(() => new Connector({ connectionString: 'host=h port=70000' }), isConfigError(/'port'.*out of range/));
  });

  test('other bad configuration names the key, variable or option', () => {
    assert.throws(() => new Connector({ connectionString: 'host=h sslmode=sometimes' }), isConfigError(/sslmode/));
    assert.throws(() => new Connector({ connectionString: "host=h password='abc" }), isConfigError(/password/));
    assert.throws(() => new Connector({ connectionString: "host=h password='abc" }), (e) => !e.message.includes('abc'));
    assert.throws(() => new Connector({ host: 'h', port: 0 }), isConfigError(/option 'port'/));
    assert.throws(() => new Connector({ host: 'h', port: true }), isConfigError(/option 'port' must be a number/));
    assert.throws(() => new Connector({ host: 'h', sslmode: 'bogus' }), isConfigError(/option 'sslmode'/));
    assert.throws(() => new Connector({ host: 'h', credential: 'magic' }), isConfigError(/option 'credential'/));
    assert.throws(() => new Connector({ host: 'h', timeoutMs: -1 }), isConfigError(/option 'timeoutMs'/));
    assert.throws(() => new Connector({ hots: 'h' }), isConfigError(/unknown Connector option 'hots'/));
    assert.throws(() => new Connector({ host: 'h', clientSecret: 42 }), isConfigError(/'clientSecret' must be a string/));
    assert.throws(() => new Connector('host=h'), isConfigError(/must be an object/));
    assert.throws(() => new Connector({}), isConfigError(/AZURE_POSTGRESQL_CONNECTIONSTRING/));
    assert.throws(() => new Connector({ prefix: 'MYDB' }), isConfigError(/MYDB_CONNECTIONSTRING/));
    assert.throws(() => new Connector({ host: 'h', authorityHost: 'http://x' }), isConfigError(/AZURE_AUTHORITY_HOST/));
  });

  test('a port given as a numeric string is accepted', () => {
    const c = new Connector({ host: 'h', port: '6432', user: 'u', password: 'p' });
    assert.equal(c.config.port, 6432);
  });

  test('the environment is read, with the Azure_ spelling and a custom prefix', () => {
    process.env.MYAPP_DB_CONNECTIONSTRING = 'postgresql://u@h.postgres.database.azure.com:5432/app?sslmode=require';
    process.env.MYAPP_DB_PORT = '70000';
    try {
      assert.throws(() => new Connector({ prefix: 'MYAPP_DB' }), isConfigError(/MYAPP_DB_PORT/));
      delete process.env.MYAPP_DB_PORT;
      const c = new Connector({ prefix: 'MYAPP_DB' });
      assert.equal(c.config.host, 'h.postgres.database.azure.com');
      assert.equal(c.config.database, 'app');
      assert.equal(c.config.prefix, 'MYAPP_DB');
    } finally {
      delete process.env.MYAPP_DB_CONNECTIONSTRING;
      delete process.env.MYAPP_DB_PORT;
    }
  });

  test('module-level functions reject with the default connector configuration error', async () => {
    await assert.rejects(pgentra.token(), isConfigError(/AZURE_POSTGRESQL_CONNECTIONSTRING/));
    await assert.rejects(pgentra.connectionString({ format: 'uri' }), isConfigError(/AZURE_POSTGRESQL/));
    await assert.rejects(pgentra.pgConfig(), isConfigError(/AZURE_POSTGRESQL/));
    assert.throws(() => pgentra.connectionStringSync(), isConfigError(/AZURE_POSTGRESQL/));
  });

  test('an unknown format is a configuration error', async () => {
    const c = new Connector({ connectionString: 'host=h user=u password=p', credential: 'password' });
    await assert.rejects(c.connectionString({ format: 'yaml' }), isConfigError(/option 'format'.*yaml/));
    assert.throws(() => c.connectionStringSync({ format: 'yaml' }), isConfigError(/yaml/));
    await assert.rejects(c.connectionString({ format: 7 }), isConfigError(/format/));
  });

  test('secret mode: the configured password is used and no token is requested', async () => {
    const c = new Connector({ connectionString: 'host=h dbname=d user=u password=s3cret' });
    assert.equal(c.config.passwordMode, true);
    assert.equal(await c.connectionString(), 'host=h port=5432 dbname=d user=u password=s3cret sslmode=require');
    await assert.rejects(c.token(), isConfigError(/a password is configured/));
    const config = await c.pgConfig();
    assert.equal(await config.password(), 's3cret');
    assert.equal(c.pgConfigSync().user, 'u');
    assert.equal(c.tokenRequests, 0);
    assert.ok(!JSON.stringify(c.config).includes('s3cret'));
  });
});

describe('conformance vectors (tests/vectors/render.json)', () => {
  const vectors = JSON.parse(fs.readFileSync(VECTORS, 'utf8'));
  test('there are vectors', () => assert.ok(vectors.length >= 10));
  for (const v of vectors) {
    test(`${v.name}: every format is byte-identical`, async () => {
      const c = new Connector({ credential: 'password', connectionString: v.rendered.libpq });
      for (const [format, expected] of Object.entries(v.rendered)) {
        if (expected === null) {
          // A format that cannot carry these values (a PDO DSN with ';' in a value).
          await assert.rejects(c.connectionString({ format }), (e) => e instanceof PgEntraError && e.code === 'PGENTRA_CONFIG');
          continue;
        }
        const got = await c.connectionString({ format });
        assert.equal(Buffer.compare(Buffer.from(got, 'utf8'), Buffer.from(expected, 'utf8')), 0, `${format}: ${got} != ${expected}`);
        assert.equal(c.connectionStringSync({ format }), expected, format);
      }
      const p = await c.params();
      assert.equal(p.host, v.params.host);
      assert.equal(p.port, v.params.port);
      assert.equal(p.database, v.params.dbname);
      assert.equal(p.user, v.params.user);
      assert.equal(p.password, v.params.password);
      assert.equal(p.sslmode, v.params.sslmode);
    });
  }
});

describe('sslmode as node-postgres ssl', () => {
  const { sslConfig } = pgentra;
  test('libpq meanings', () => {
    assert.equal(sslConfig('disable'), false);
    assert.equal(sslConfig('allow'), false);
    assert.equal(sslConfig('prefer'), false);
    assert.deepEqual(sslConfig('require'), { rejectUnauthorized: false });
    const ca = sslConfig('verify-ca');
    assert.equal(ca.rejectUnauthorized, true);
    assert.equal(typeof ca.checkServerIdentity, 'function');
    assert.equal(ca.checkServerIdentity('h', {}), undefined, 'verify-ca does not check the host name');
    const full = sslConfig('verify-full');
    assert.equal(full.rejectUnauthorized, true);
    assert.equal(full.checkServerIdentity, undefined, "verify-full keeps Node's host name check");
  });

  test('sslrootcert is read; with require it verifies the chain, as libpq does', () => {
    const file = path.join(__dirname, 'fixtures-ca.pem');
    fs.writeFileSync(file, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
    try {
      const full = sslConfig('verify-full', { sslrootcert: file });
      assert.ok(Buffer.isBuffer(full.ca));
      const req = sslConfig('require', { sslrootcert: file });
      assert.equal(req.rejectUnauthorized, true);
      assert.equal(typeof req.checkServerIdentity, 'function');
    } finally {
      fs.unlinkSync(file);
    }
    assert.throws(() => sslConfig('verify-full', { sslrootcert: '/nonexistent/ca.pem' }), isConfigError(/sslrootcert '\/nonexistent\/ca.pem'/));
  });

  test('pgConfig carries sslmode, sslrootcert and application_name from the connection string', async () => {
    const c = new Connector({
      connectionString: 'host=h port=6432 dbname=d user=u password=p sslmode=disable application_name=myapp connect_timeout=7',
      credential: 'password',
    });
    const config = await c.pgConfig({ max: 3 });
    assert.equal(config.ssl, false);
    assert.equal(config.application_name, 'myapp');
    assert.equal(config.connectionTimeoutMillis, 7000);
    assert.equal(config.port, 6432);
    assert.equal(config.max, 3);
  });
});

describe('integration helpers', () => {
  test('take (connector, overrides) in either order and fill the connection in beforeConnect', async () => {
    const c = new Connector({ connectionString: 'host=h port=6432 dbname=d user=u password=p', credential: 'password' });
    const theirs = [];
    const a = pgentra.sequelizeOptions(c, { logging: false, hooks: { beforeConnect: (cfg) => theirs.push(cfg.username) } });
    const b = pgentra.sequelize.options({ logging: false }, c);
    for (const o of [a, b]) {
      assert.equal(o.dialect, 'postgres');
      assert.equal(o.host, 'h');
      assert.equal(o.port, 6432);
      assert.equal(o.database, 'd');
      assert.equal(o.logging, false);
      assert.deepEqual(o.dialectOptions.ssl, { rejectUnauthorized: false });
    }
    const config = { host: 'h' };
    await a.hooks.beforeConnect(config);
    assert.equal(config.username, 'u');
    assert.equal(config.password, 'p');
    assert.deepEqual(theirs, ['u'], "the caller's own hook runs after pgentra's");
    const knexConfig = await pgentra.knex.connection(c, { application_name: 'x' })();
    assert.equal(knexConfig.user, 'u');
    assert.equal(knexConfig.application_name, 'x');
    assert.equal(await knexConfig.password(), 'p');
    assert.throws(() => pgentra.knexConnection('x'), isConfigError(/options object/));
    assert.throws(() => pgentra.sequelize.hooks({}), isConfigError(/Connector/));
  });
});

describe('module shape', () => {
  test('the ESM entry exports the same objects', async () => {
    const esm = await import('../lib/index.mjs');
    assert.equal(esm.default, pgentra);
    assert.equal(esm.Connector, Connector);
    assert.equal(esm.PgEntraError, PgEntraError);
    for (const name of Object.keys(pgentra)) assert.equal(esm[name], pgentra[name], name);
  });

  test('package.json points at the CommonJS and ESM entries and the typings', () => {
    const pkg = require('../package.json');
    assert.equal(require.resolve('..'), path.resolve(__dirname, '..', pkg.main));
    const entry = pkg.exports['.'];
    assert.equal(entry.require.default, pkg.main);
    assert.equal(entry.require.types, pkg.types);
    for (const f of [entry.import.default, entry.import.types, entry.require.types]) {
      assert.ok(fs.existsSync(path.join(__dirname, '..', f)), f);
    }
    // The prebuilt addons are the ones built on this machine (node/build.sh, and
    // scripts/build-platforms.sh for the other platforms): one at least, the rest may be absent.
    const addon = (f) => /^pgentra\..+\.node$/.test(f);
    for (const f of pkg.files.filter((f) => !addon(f))) assert.ok(fs.existsSync(path.join(__dirname, '..', f)), f);
    assert.ok(pkg.files.filter(addon).some((f) => fs.existsSync(path.join(__dirname, '..', f))), 'no prebuilt addon');
  });
});
