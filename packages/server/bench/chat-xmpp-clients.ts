/**
 * One client process of the ejabberd scenario (forked by bench/chat-xmpp.ts;
 * the clients are spread over several, for Sequent and ejabberd alike). Each
 * client is a room member that sends into its room, keeping `window` sends
 * unacknowledged, and counts what the other members send.
 *
 * - ejabberd: `@xmpp/client` over TCP, stream management on. A send is a
 *   groupchat `<message>` followed by an `<r/>`; it is acked when the room
 *   reflects it back to its sender (the room does that after mod_mam wrote it to
 *   the archive). The `<a/>` that answers the `<r/>` (the c2s process handled the
 *   stanza, routed it to the room, nothing stored yet) is timed beside it.
 * - sequent: raw protocol-v1 `send` on a WebSocket, acked by its `ack` (the
 *   message was committed at the server's `--durability`).
 */
import { client as xmppClient, xml, type Client as XmppClient, type Element } from '@xmpp/client';
import WebSocket from 'ws';
import { newCmid } from 'sequent-client';
import { runWindowed, type LoadClient } from './load.js';

export type ScenarioSystem = 'sequent' | 'ejabberd';

export interface ClientSpec {
  user: string;
  /** Password (ejabberd) or token (sequent). */
  secret: string;
  /** Room JID (ejabberd) or conv (sequent). */
  room: string;
}

export type ToClients =
  | { type: 'connect'; system: ScenarioSystem; url: string; domain: string; clients: ClientSpec[]; body: string; timeoutMs: number }
  | { type: 'run'; messages: number; window: number; timeoutMs: number }
  | { type: 'report' }
  | { type: 'close' };

export type FromClients =
  | { type: 'ready' }
  | { type: 'failed'; error: string }
  /** Wall-clock ms (timeOrigin-based, comparable across processes); latencies ascending. */
  | { type: 'ran'; startedAt: number; endedAt: number; latencies: number[]; transportAcks: number[] }
  | { type: 'report'; deliveries: number; lastAt: number; cpuSeconds: number };

interface Tally {
  deliveries: number;
  lastAt: number;
}
const tally: Tally = { deliveries: 0, lastAt: 0 };
const wall = () => performance.timeOrigin + performance.now();
function delivered(): void {
  tally.deliveries++;
  tally.lastAt = wall();
}

interface Pending {
  at: number;
  acked(): void;
  failed(error: Error): void;
}

/** Latencies of the XEP-0198 `<a/>` of every send, across the process's clients. */
let transportAcks: number[] = [];
const SM_REQUEST = '<r xmlns="urn:xmpp:sm:3"/>';

class XmppLoadClient implements LoadClient {
  private next = 0;
  private readonly pending = new Map<string, Pending>();
  private readonly sentAt = new Map<string, number>();
  private readonly self: string;

  private constructor(
    private readonly xmpp: XmppClient,
    private readonly spec: ClientSpec,
    private readonly body: string,
  ) {
    this.self = `${spec.room}/${spec.user}`;
    xmpp.on('stanza', (stanza) => this.onStanza(stanza));
    xmpp.streamManagement.on('ack', (stanza) => {
      const id = stanza.attrs['id'];
      const at = id === undefined ? undefined : this.sentAt.get(id);
      if (at === undefined) return;
      this.sentAt.delete(id!);
      transportAcks.push(performance.now() - at);
    });
  }

  static async connect(url: string, domain: string, spec: ClientSpec, body: string): Promise<XmppLoadClient> {
    const xmpp = xmppClient({ service: url, domain, username: spec.user, password: spec.secret, resource: 'bench' });
    xmpp.on('error', () => undefined); // a failed send or a closed socket shows as a missing ack
    await xmpp.start();
    // Online comes right after resource binding; the server's <enabled/> may still be on its way.
    for (let waited = 0; !xmpp.streamManagement.enabled && waited < 5000; waited += 5) await new Promise((resolve) => setTimeout(resolve, 5));
    if (!xmpp.streamManagement.enabled) throw new Error(`${spec.user}: stream management was not enabled`);
    const joined = new Promise<void>((resolve, reject) => {
      const onJoin = (stanza: Element) => {
        if (stanza.attrs['from'] !== `${spec.room}/${spec.user}`) return;
        if (stanza.name === 'presence' && stanza.attrs['type'] === 'error') reject(new Error(`${spec.user}: join refused: ${stanza.toString()}`));
        else if (stanza.name === 'presence') resolve();
      };
      xmpp.on('stanza', onJoin);
    });
    await xmpp.send(xml('presence', { to: `${spec.room}/${spec.user}` }, xml('x', { xmlns: 'http://jabber.org/protocol/muc' }, xml('history', { maxstanzas: '0' }))));
    await joined;
    return new XmppLoadClient(xmpp, spec, body);
  }

  send(acked: () => void, failed: (error: Error) => void): void {
    const id = `${this.spec.user}-${++this.next}`;
    const at = performance.now();
    this.pending.set(id, { at, acked, failed });
    this.sentAt.set(id, at);
    // The <r/> right behind its message (send resolves once the message is written and in the
    // library's stream-management queue), so that the <a/> answering it covers this message.
    this.xmpp
      .send(xml('message', { to: this.spec.room, type: 'groupchat', id }, xml('body', {}, this.body)))
      .then(() => this.xmpp.write(SM_REQUEST))
      .catch(failed);
  }

  private onStanza(stanza: Element): void {
    if (stanza.name !== 'message') return;
    const from = stanza.attrs['from'];
    if (from === this.self) {
      const id = stanza.attrs['id'];
      const waiter = id === undefined ? undefined : this.pending.get(id);
      if (!waiter) return;
      this.pending.delete(id!);
      if (stanza.attrs['type'] === 'error') waiter.failed(new Error(`${this.spec.user}: ${stanza.toString().slice(0, 300)}`));
      else waiter.acked();
      return;
    }
    if (stanza.attrs['type'] === 'groupchat' && stanza.getChild('body') !== undefined) delivered();
  }

  close(): Promise<void> {
    return this.xmpp.stop().catch(() => undefined);
  }
}

const MSG_PUSH = Buffer.from('{"t":"msg"');
const KIND_MSG = '"kind":"msg"';

class SequentLoadClient implements LoadClient {
  private nextId = 1;
  private dseq = 0;
  private readonly waiting = new Map<number, Pending>();

  private constructor(
    private readonly ws: WebSocket,
    private readonly prefix: string,
  ) {
    ws.on('message', (data: Buffer) => this.onFrame(data));
  }

  static async connect(url: string, spec: ClientSpec, body: string): Promise<SequentLoadClient> {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    const welcome = new Promise<string>((resolve) => ws.once('message', (data: Buffer) => resolve(data.toString('utf8'))));
    ws.send(JSON.stringify({ t: 'hello', id: 0, proto: 1, token: spec.secret }));
    const first = await welcome;
    if (!first.startsWith('{"t":"welcome"')) throw new Error(`${spec.user}: hello refused: ${first.slice(0, 200)}`);
    return new SequentLoadClient(ws, `{"t":"send","conv":${JSON.stringify(spec.room)},"body":${JSON.stringify({ text: body })},`);
  }

  send(acked: () => void, failed: (error: Error) => void): void {
    const id = this.nextId++;
    this.waiting.set(id, { at: 0, acked, failed });
    this.ws.send(`${this.prefix}"id":${id},"cmid":"${newCmid()}","dseq":${++this.dseq}}`);
  }

  private onFrame(data: Buffer): void {
    // Pushes are counted without parsing, as the XMPP side counts stanzas the library already parsed.
    if (data.subarray(0, MSG_PUSH.length).equals(MSG_PUSH)) {
      if (data.indexOf(KIND_MSG) !== -1) delivered();
      return;
    }
    const frame = JSON.parse(data.toString('utf8')) as { t: string; id?: number; code?: string };
    const waiter = frame.id === undefined ? undefined : this.waiting.get(frame.id);
    if (!waiter) return;
    this.waiting.delete(frame.id!);
    if (frame.t === 'ack') waiter.acked();
    else waiter.failed(new Error(`send ${frame.id}: ${frame.code ?? frame.t}`));
  }

  close(): Promise<void> {
    this.ws.close();
    return Promise.resolve();
  }
}

let clients: (XmppLoadClient | SequentLoadClient)[] = [];

async function connectAll(message: Extract<ToClients, { type: 'connect' }>): Promise<FromClients> {
  try {
    // A few handshakes at once: SCRAM and the room join are a benchmark of their own.
    const queue = [...message.clients];
    const worker = async () => {
      for (let spec = queue.shift(); spec !== undefined; spec = queue.shift()) {
        clients.push(
          message.system === 'ejabberd'
            ? await XmppLoadClient.connect(message.url, message.domain, spec, message.body)
            : await SequentLoadClient.connect(message.url, spec, message.body),
        );
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    return { type: 'ready' };
  } catch (error) {
    return { type: 'failed', error: error instanceof Error ? error.message : String(error) };
  }
}

async function runRound(message: Extract<ToClients, { type: 'run' }>): Promise<FromClients> {
  transportAcks = [];
  try {
    const phase = await runWindowed(clients, message.messages, message.window, message.timeoutMs);
    const startedAt = performance.timeOrigin + phase.startedAt;
    // Every <a/> of the round is in by now or soon: it is sent before (or just after) the reflection.
    await new Promise((resolve) => setTimeout(resolve, 50));
    return { type: 'ran', startedAt, endedAt: startedAt + phase.elapsedMs, latencies: [...phase.latencies], transportAcks: transportAcks.sort((a, b) => a - b) };
  } catch (error) {
    return { type: 'failed', error: error instanceof Error ? error.message : String(error) };
  }
}

process.on('message', (message: ToClients) => {
  const reply = (m: FromClients) => process.send!(m);
  switch (message.type) {
    case 'connect':
      void connectAll(message).then(reply);
      break;
    case 'run':
      void runRound(message).then(reply);
      break;
    case 'report': {
      const cpu = process.cpuUsage();
      reply({ type: 'report', deliveries: tally.deliveries, lastAt: tally.lastAt, cpuSeconds: (cpu.user + cpu.system) / 1e6 });
      break;
    }
    case 'close':
      void Promise.all(clients.map((c) => c.close())).finally(() => process.exit(0));
      break;
  }
});
