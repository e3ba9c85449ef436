/**
 * A minimal terminal chat client on the SDK: each line you type is sent to one
 * conversation, every message of it is printed in order. The outbox lives in a
 * file, so a message typed just before the process dies is sent on the next run.
 *
 *   npx sequent token --user alice --device laptop > alice.token
 *   node dist/examples/chat-client.js ws://127.0.0.1:8080/v1/ws "$(cat alice.token)" dm:alice:bob ./alice-store.json
 */
import { createInterface } from 'node:readline';
import WebSocket from 'ws';
import { SequentClient, webSocketTransport, type WebSocketConstructor } from '../src/client/index.js';
import { FileClientStore } from '../src/client/file-store.js';

const [url, token, conv, storePath = './chat-store.json'] = process.argv.slice(2);
if (!url || !token || !conv) {
  process.stderr.write('usage: chat-client <ws-url> <token> <conversation> [store-file]\n');
  process.exit(2);
}

const client = new SequentClient({
  url,
  token,
  store: new FileClientStore(storePath),
  transport: webSocketTransport(WebSocket as unknown as WebSocketConstructor),
});
client.on('message', ({ conv: from, entry }) => {
  if (from !== conv) return;
  const text = entry.kind === 'system' ? JSON.stringify(entry.body) : (entry.body as { text?: string }).text;
  process.stdout.write(`#${entry.seq} ${entry.from}: ${text}\n`);
});
client.on('state', ({ to }) => process.stderr.write(`[${to}]\n`));
client.on('error', (error) => process.stderr.write(`[error ${error.code}: ${error.message}]\n`));
await client.start();
await client.sync(conv);

const lines = createInterface({ input: process.stdin });
lines.on('line', (text) => {
  if (text.trim() !== '') client.send(conv, { text });
});
lines.on('close', () => {
  // Leave once everything typed is acked; what is not stays in the store for next time.
  const leave = () => (client.pending(conv).some((h) => h.state === 'sending') ? setTimeout(leave, 50) : void client.stop());
  leave();
});
