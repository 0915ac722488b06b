// Type-checked by test/types.test.js (tsc --noEmit): the typings an ESM user sees.
import pg from 'pg';
import pgentra, { Connector, PgEntraError, token, pgConfig, connectionString, sequelize, knex } from 'pgentra';
import type { ConnectorOptions, PgConfig, TokenInfo, ErrorCode } from 'pgentra';

const options: ConnectorOptions = { connectionString: 'host=h', clientId: 'x', timeoutMs: 5000, allowInsecure: false };
const c = new Connector(options);
const tok: string = await c.token();
const fromDefault: string = await pgentra.token();
const viaFn: string = await token();
const config: PgConfig & { max: number } = await pgConfig({ max: 5 });
const pool = new pg.Pool(config);
const client = new pg.Client(await c.pgConfig());
const uri: string = await connectionString({ format: 'uri' });
const jdbc: string = c.connectionStringSync('jdbc');
const info: TokenInfo = await c.tokenInfo();
const expires: number = info.expiresOn;
const n: number = c.tokenRequests;
const again: boolean = c.connectFailed(tok, '28P01') || c.connectFailed(tok, null, false);
const user: string | undefined = c.config.user;
c.invalidate();
const hooks = sequelize.hooks(c);
await hooks.beforeConnect({ username: 'u' });
const knexConnection = knex.connection(c);
const fresh = await knexConnection();
const password: string = await fresh.password();
try {
  await token();
} catch (e) {
  if (e instanceof PgEntraError) {
    const code: ErrorCode = e.code;
    const service: string | undefined = e.serviceCode;
    const isConfig: boolean = code === PgEntraError.codes.CONFIG;
    void service;
    void isConfig;
  }
}
void [again, tok, token, fromDefault, viaFn, pool, client, uri, jdbc, expires, n, user, password];
