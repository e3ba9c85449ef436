/**
 * A minimal terminal chat client on the SDK: each line you type is sent to the
 * current conversation, every message of it is printed in order. The outbox
 * lives in a file, so a message typed just before the process dies is sent on
 * the next run. Commands:
 *
 *   /create g:team bob carol    create a group (you are in it too) and switch to it
 *   /members g:team +dave -bob  add and remove members
 *   /open dm:alice:bob          switch to another conversation
 *   /discard                    drop the current conversation's sends the server refused for good
 *
 *   npx sequent-server token --user alice --device laptop > alice.token
 *   node dist/examples/chat-client.js ws://127.0.0.1:8080/v1/ws "$(cat alice.token)" dm:alice:bob ./alice-store.json
 */
import { createInterface } from 'node:readline';
import WebSocket from 'ws';
import { SequentClient, SequentClientError, webSocketTransport } from 'sequent-client';
import { FileClientStore } from 'sequent-client/file-store';

interface Chat {
  text: string;
}

const [url, token, firstConv, storePath = './chat-store.json'] = process.argv.slice(2);
if (!url || !token || !firstConv) {
  process.stderr.write('usage: chat-client <ws-url> <token> <conversation> [store-file]\n');
  process.exit(2);
}
let conv = firstConv;

const say = (line: string): void => void process.stderr.write(`[${line}]\n`);
const problem = (error: unknown): void => say(error instanceof SequentClientError ? `error ${error.code}: ${error.message}` : `error: ${String(error)}`);

const client = new SequentClient<Chat>({ url, token, store: new FileClientStore(storePath), transport: webSocketTransport(WebSocket) });
client.on('message', ({ conv: from, entry }) => {
  if (from !== conv) return;
  // Edits, deletes and reactions are entries too: this line-per-entry client prints them as they are.
  const text = entry.kind === 'msg' ? entry.body.text : `(${entry.kind}${entry.ref === undefined ? '' : ` of #${entry.ref}`}) ${JSON.stringify(entry.body)}`;
  process.stdout.write(`#${entry.seq} ${entry.from}: ${text}\n`);
});
client.on('state', ({ to }) => say(to));
client.on('error', problem);
client.on('blocked', ({ conv: stuck, error, discardable }) =>
  say(`sends to ${stuck} are stuck: ${error.code} (${discardable ? 'type /discard to drop them' : 'they are retried'})`),
);

async function command(line: string): Promise<void> {
  const [name, target, ...rest] = line.trim().split(/\s+/);
  if (name === '/create' && target) {
    const { seq } = await client.create(target, rest);
    conv = target;
    say(`created ${target} at #${seq}`);
  } else if (name === '/members' && target) {
    const add = rest.filter((m) => m.startsWith('+')).map((m) => m.slice(1));
    const remove = rest.filter((m) => m.startsWith('-')).map((m) => m.slice(1));
    await client.members(target, { add, remove });
  } else if (name === '/open' && target) {
    conv = target;
    await client.sync(conv);
    for (const entry of client.entries(conv)) process.stdout.write(`#${entry.seq} ${entry.from}: ${entry.kind === 'msg' ? entry.body.text : JSON.stringify(entry.body)}\n`);
  } else if (name === '/discard') {
    say(`discarded ${(await client.discard(conv)).length} message(s)`);
  } else {
    say('commands: /create <group> [members…], /members <group> +add -remove, /open <conversation>, /discard');
  }
}

await client.start();
await client.sync(conv).catch(problem);

// Lines run one after another, so a /create finishes before the lines typed after it are sent.
let queue: Promise<void> = Promise.resolve();
const lines = createInterface({ input: process.stdin });
lines.on('line', (text) => {
  queue = queue
    .then(async () => {
      if (text.trim() === '') return;
      if (text.startsWith('/')) return command(text);
      client.send(conv, { text }).whenSent().catch(problem);
    })
    .catch(problem);
});
lines.on('close', () => {
  // Leave once everything typed is acked; what is not stays in the store for next time.
  const leave = () => (client.pending().some((h) => h.state === 'sending') ? setTimeout(leave, 50) : void client.stop());
  void queue.then(leave);
});
