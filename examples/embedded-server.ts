/**
 * A Sequent server embedded in your own Node process, on the default SQLite store.
 * Run after `npm run build`: node dist/examples/embedded-server.js [port]
 */
import { pino } from 'pino';
import { startServer, type RunningServer } from 'sequent-server';

const port = Number(process.argv[2] ?? 8080);
let server: RunningServer;
try {
  server = await startServer({ port, dataDir: './data', logger: pino() });
} catch (error) {
  const code = (error as NodeJS.ErrnoException).code;
  // A taken port is the usual first-run problem: say so in one line, not a stack trace.
  if (code === 'EADDRINUSE' || code === 'EACCES') {
    process.stderr.write(`embedded-server: cannot listen on port ${port} (${code}); pass another port as the first argument\n`);
    process.exit(1);
  }
  throw error;
}
console.log(`listening on ${server.url}`);
console.log(`a token for alice's phone: ${await server.mintToken('alice', 'phone', 3600)}`);

const stop = () => void server.close();
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
