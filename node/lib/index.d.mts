// Typings of the ESM entry (lib/index.mjs): the same names as the CommonJS module, plus a
// default export holding all of them.
import * as pgentra from './index.js';

export * from './index.js';
export default pgentra;
