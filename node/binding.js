'use strict';
// Loads the prebuilt native addon (napi-rs, crate bindings/node). Its API is typed in
// index.d.ts, generated from the Rust sources by napi-rs; lib/index.js is the public layer.
//
// One addon per platform, named with napi-rs's platform triples and chosen at run time as
// napi-rs does: pgentra.linux-x64-gnu.node, pgentra.linux-arm64-gnu.node (glibc),
// pgentra.linux-x64-musl.node, pgentra.linux-arm64-musl.node (musl, e.g. Alpine).

const fs = require('node:fs');
const path = require('node:path');

// glibc or musl: the system's ldd script says which C library it belongs to (a file read); where
// it says neither (or is missing, as in distroless images), the running Node.js's own report,
// which names the glibc it runs on (about 4 ms, so second).
function isMusl() {
  try {
    const ldd = fs.readFileSync('/usr/bin/ldd', 'latin1');
    if (ldd.includes('musl')) return true;
    if (ldd.includes('GLIBC') || ldd.includes('GNU C Library')) return false;
  } catch {
    // no ldd: ask the report below
  }
  try {
    const header = process.report.getReport().header;
    if (header && typeof header === 'object') return !header.glibcVersionRuntime;
  } catch {
    // no report either
  }
  return false;
}

const libc = process.platform === 'linux' ? (isMusl() ? '-musl' : '-gnu') : '';
const triple = `${process.platform}-${process.arch}${libc}`;
const file = path.join(__dirname, `pgentra.${triple}.node`);

try {
  module.exports = require(file);
} catch (e) {
  let shipped = [];
  try {
    shipped = fs.readdirSync(__dirname).filter((f) => /^pgentra\..+\.node$/.test(f)).map((f) => f.slice(8, -5));
  } catch {
    // nothing to list
  }
  const err = new Error(
    `pgentra: cannot load the native addon for ${triple} (${file}): ${e.message}. ` +
      `This package ships prebuilt addons for: ${shipped.join(', ') || 'none'}; ` +
      'build one for another platform from the repository with node/build.sh.',
  );
  err.code = 'PGENTRA_INTERNAL';
  err.cause = e;
  throw err;
}
