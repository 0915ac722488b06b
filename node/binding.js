'use strict';
// Loads the prebuilt native addon (napi-rs, crate bindings/node). Its API is typed in
// index.d.ts, generated from the Rust sources by napi-rs; lib/index.js is the public layer.

const path = require('node:path');

// Only linux-x64-gnu is prebuilt (glibc 2.34 or newer); other platforms build from the
// repository with node/build.sh.
const triple = `${process.platform}-${process.arch}${process.platform === 'linux' ? '-gnu' : ''}`;
const file = path.join(__dirname, `pgentra.${triple}.node`);

try {
  module.exports = require(file);
} catch (e) {
  const err = new Error(
    `pgentra: cannot load the native addon for ${triple} (${file}): ${e.message}. ` +
      'The npm package ships a prebuilt addon for linux-x64 with glibc 2.34 or newer; ' +
      'build one for another platform from the repository with node/build.sh.',
  );
  err.code = 'PGENTRA_INTERNAL';
  err.cause = e;
  throw err;
}
