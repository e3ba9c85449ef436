/**
 * A Sequent server embedded in your own Node process, on the default SQLite store.
 * Run after `npm run build`: node dist/examples/embedded-server.js
 */
import { pino } from 'pino';
import { startServer } from '../src/server/index.js';

const server = await startServer({ port: 8080, dataDir: './data', logger: pino() });
console.log(`listening on ${server.url}`);
console.log(`a token for alice's phone: ${await server.mintToken('alice', 'phone', 3600)}`);

process.once('SIGTERM', () => void server.close());
process.once('SIGINT', () => void server.close());
