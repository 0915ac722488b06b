// ESM entry: the same module as the CommonJS one (one default connector per process).
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const pgentra = require('./index.js');

export const {
  Connector,
  PgEntraError,
  defaultConnector,
  token,
  getToken,
  params,
  pgConfig,
  pgConfigSync,
  pool,
  connectClient,
  connectionString,
  connectionStringSync,
  tokenInfo,
  invalidate,
  sslConfig,
  sequelize,
  sequelizeOptions,
  knex,
  knexConnection,
} = pgentra;

export default pgentra;
