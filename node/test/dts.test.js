'use strict';
// The committed index.d.ts (the native addon's typings) must equal what napi-rs generates from
// bindings/node now. Fix a failure with `node node/scripts/dts.js --write` and commit.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { check } = require('../scripts/dts.js');

test('index.d.ts equals a fresh napi-rs generation from bindings/node', { timeout: 600_000 }, async () => {
  // Inside the harness's network namespace cargo cannot reach a registry: stay offline.
  const result = await check({ offline: process.env.PGENTRA_IN_NETNS === '1', quiet: true });
  assert.ok(
    result.ok,
    `node/index.d.ts is stale (first difference at ${result.difference}); run \`node node/scripts/dts.js --write\``,
  );
});
