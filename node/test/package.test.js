'use strict';
// The packed package (node/build.sh → dist/node/pgentra-<version>.tgz) is all a user needs:
// it installs offline into an empty project (no dependencies) and works from CommonJS and ESM.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.join(__dirname, '..', '..');
const { version } = require('../package.json');
const tgz = path.join(root, 'dist', 'node', `pgentra-${version}.tgz`);

function run(cmd, args, cwd) {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', env: { ...process.env, npm_config_update_notifier: 'false' } });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')}:\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

test(`dist/node/pgentra-${version}.tgz installs alone and works`, { timeout: 120_000 }, () => {
  assert.ok(fs.existsSync(tgz), `${tgz} is missing: run node/build.sh`);
  const listing = run('tar', ['-tzf', tgz], root).split('\n').filter(Boolean).sort();
  for (const f of ['package/package.json', 'package/pgentra.linux-x64-gnu.node', 'package/binding.js', 'package/index.d.ts',
    'package/lib/index.js', 'package/lib/index.mjs', 'package/lib/index.d.ts', 'package/lib/index.d.mts', 'package/README.md']) {
    assert.ok(listing.includes(f), `${f} is not in the package: ${listing.join(' ')}`);
  }
  assert.ok(!listing.some((f) => /\/(test|test-support|scripts|node_modules)\//.test(f)), `tests or tooling packed: ${listing.join(' ')}`);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgentra-npm-'));
  try {
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'app', private: true }));
    run('npm', ['install', '--offline', '--no-audit', '--no-fund', tgz], dir);
    const script = `
      const { Connector, PgEntraError } = require('pgentra');
      const c = new Connector({ credential: 'password', connectionString: 'host=h dbname=d user=u password=p' });
      if (c.connectionStringSync({ format: 'uri' }) !== 'postgresql://u:p@h:5432/d?sslmode=require') throw new Error('uri');
      try { new Connector({ connectionString: 'host=h port=70000' }); throw new Error('no error'); }
      catch (e) { if (!(e instanceof PgEntraError) || e.code !== 'PGENTRA_CONFIG') throw e; }
      import('pgentra').then((m) => { if (m.Connector !== Connector || m.default.Connector !== Connector) throw new Error('esm'); console.log('ok'); });
    `;
    assert.equal(run(process.execPath, ['-e', script], dir).trim(), 'ok');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
