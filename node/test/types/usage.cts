// Type-checked by test/types.test.js (tsc --noEmit): the typings a CommonJS user sees.
import pg = require('pg');
import pgentra = require('pgentra');

async function main(): Promise<void> {
  const c = new pgentra.Connector({ prefix: 'MYDB' });
  const pool = new pg.Pool(await c.pgConfig({ idleTimeoutMillis: 1000 }));
  const s: string = await pgentra.connectionString({ format: 'ado' });
  const opts = pgentra.sequelizeOptions({ logging: false }, c);
  const opts2 = pgentra.sequelize.options(c, { logging: false });
  const k = pgentra.knexConnection(c);
  const ssl = pgentra.sslConfig('verify-full', { sslrootcert: '/ca.pem' });
  void [pool, s, opts.hooks.beforeConnect, opts2, k, ssl];
}
void main;
