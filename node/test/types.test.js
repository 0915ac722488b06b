'use strict';
// The hand-written typings (lib/index.d.ts, lib/index.d.mts) type-check real CommonJS and ESM
// usage with node-postgres's own types, under `strict`.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const path = require('node:path');

test('the typings compile against usage from CommonJS and ESM (tsc --noEmit)', () => {
  const root = path.join(__dirname, '..');
  const tsc = path.join(path.dirname(require.resolve('typescript', { paths: [root] })), '..', 'bin', 'tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', path.join(__dirname, 'types', 'tsconfig.json')], {
    cwd: root,
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, `tsc failed:\n${r.stdout}${r.stderr}`);
});
