// Node.js: pgentra against @azure/identity, side by side, one run, the same loopback emulator.
// Run under the harness with both packages resolvable (bench/run.sh installs them into a
// scratch folder): NODE_PATH=<folder>/node_modules node bench/node_bench.js
'use strict';
const { execFileSync } = require('node:child_process');

const SCOPE = 'https://ossrdbms-aad.database.windows.net/.default';
const UAMI = '11111111-1111-1111-1111-111111111111';
const CS = `host=${process.env.PGENTRA_PG_HOST} port=${process.env.PGENTRA_PG_PORT} dbname=postgres sslmode=require`;
const EMU = process.env.PGENTRA_EMULATOR_HTTP;

async function control(path, method = 'GET') {
  const r = await fetch(EMU + path, { method });
  return r.json();
}

async function perCallNs(fn, n) {
  await fn();
  const runs = [];
  for (let k = 0; k < 5; k++) {
    const t = process.hrtime.bigint();
    for (let i = 0; i < n; i++) await fn();
    runs.push(Number(process.hrtime.bigint() - t) / n);
  }
  runs.sort((a, b) => a - b);
  return runs[2];
}

function childMs(code, runs = 7) {
  const times = [];
  for (let i = 0; i < runs; i++) {
    const out = execFileSync(process.execPath, ['-e', `const t=process.hrtime.bigint();${code};console.log(Number(process.hrtime.bigint()-t)/1e6)`], { env: process.env });
    times.push(parseFloat(out.toString()));
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(runs / 2)];
}

function childRssMiB(code) {
  const out = execFileSync(process.execPath, ['-e', `(async()=>{${code};const s=require('fs').readFileSync('/proc/self/status','utf8');console.log(/VmHWM:\\s+(\\d+)/.exec(s)[1])})()`], { env: process.env });
  return parseInt(out.toString(), 10) / 1024;
}

// In a fresh process each: @azure/identity shares its MSAL cache across credential instances.
async function burst(code, n = 64) {
  await control('/control/reset', 'POST');
  await control('/control/rotate', 'POST');
  execFileSync(process.execPath, ['-e', `(async()=>{const call=(()=>{${code}})();await Promise.all(Array.from({length:${n}},()=>call()))})()`], { env: process.env });
  return (await control('/control/stats')).msi_requests;
}

(async () => {
  const pgentra = require('pgentra');
  const { ManagedIdentityCredential, DefaultAzureCredential } = require('@azure/identity');
  const c = new pgentra.Connector({ connectionString: CS, clientId: UAMI });
  const mi = new ManagedIdentityCredential({ clientId: UAMI });
  const dac = new DefaultAzureCredential({ managedIdentityClientId: UAMI });
  const n = 100000;
  const tPg = await perCallNs(() => c.getToken(), n);
  const tMi = await perCallNs(() => mi.getToken(SCOPE), n / 10);
  const tDac = await perCallNs(() => dac.getToken(SCOPE), n / 10);
  const rPg = childMs("require('pgentra')");
  const rAz = childMs("require('@azure/identity')");
  const base = childRssMiB('');
  const mPg = childRssMiB(`const p=require('pgentra');await new p.Connector({connectionString:${JSON.stringify(CS)},clientId:'${UAMI}'}).getToken()`);
  const mAz = childRssMiB(`const {ManagedIdentityCredential:M}=require('@azure/identity');await new M({clientId:'${UAMI}'}).getToken('${SCOPE}')`);
  const bPg = await burst(`const p=require('pgentra');const k=new p.Connector({connectionString:${JSON.stringify(CS)},clientId:'${UAMI}'});return ()=>k.getToken()`);
  const bAz = await burst(`const {ManagedIdentityCredential:M}=require('@azure/identity');const k=new M({clientId:'${UAMI}'});return ()=>k.getToken('${SCOPE}')`);
  const f = (x) => Math.round(x).toLocaleString('en-US');
  console.log('| measure | pgentra | @azure/identity | ratio |');
  console.log('|---|---|---|---|');
  console.log(`| cached getToken | ${f(tPg)} ns | ${f(tMi)} ns (ManagedIdentityCredential) | ${(tMi / tPg).toFixed(0)}x |`);
  console.log(`| cached getToken via DefaultAzureCredential | ${f(tPg)} ns | ${f(tDac)} ns | ${(tDac / tPg).toFixed(0)}x |`);
  console.log(`| require | ${rPg.toFixed(1)} ms | ${rAz.toFixed(1)} ms | ${(rAz / rPg).toFixed(0)}x |`);
  console.log(`| peak RSS after one token (node alone ${base.toFixed(1)} MiB) | ${mPg.toFixed(1)} MiB | ${mAz.toFixed(1)} MiB | ${((mAz - base) / Math.max(mPg - base, 0.1)).toFixed(1)}x less added |`);
  console.log(`| 64 concurrent getToken on a fresh connector: identity requests | ${bPg} | ${bAz} | |`);
})().catch((e) => { console.error(e); process.exit(1); });
