/**
 * One device of a chaos run: an SDK client on a file store, behind a kill
 * switch that models the app dying (no stop(), no last writes, no goodbye),
 * restarted later from whatever its store had persisted.
 */
import WebSocket from 'ws';
import { FileClientStore } from 'sequent-client/file-store';
import { newDeviceId, SequentClient, tapTransport, webSocketTransport, type Transport, type WebSocketConstructor } from 'sequent-client';
import { bodyDigest, type FinalViewItem, type HistoryRecorder } from './history.js';
import { killable } from './killable.js';
import type { Prng } from './prng.js';
import { rawFrames, type RawFrames } from './raw-frames.js';
import { DeviceRecorder, type RunCounters } from './recorder.js';
import { REACTION_KEYS, Targets, type ChatOperation } from './workload.js';

/**
 * Delivered entries a device's client keeps per conversation. The SDK keeps every
 * entry of a session for the app to show (`entries()`); a chaos device shows
 * nothing, and the checker reads what it needs from the recorded history, so
 * the rest is dropped as it arrives. Kept: the newest, which is the SDK's
 * `highestSeq` (the `seen` of the next send). Without this, 150 devices in one
 * process hold messages × receivers entries, hundreds of MB within minutes.
 */
const KEEP_DELIVERED = 16;

export interface DeviceSettings {
  user: string;
  /** The plan's name for the device; the protocol device id is the one its store made. */
  label: string;
  storePath: string;
  url: () => string;
  token: (user: string, device: string) => Promise<string>;
  history: HistoryRecorder;
  counters: RunCounters;
}

export class ChaosDevice {
  client: SequentClient | undefined;
  deviceId = '';
  private kill: (() => void) | undefined;
  private recorder: DeviceRecorder | undefined;
  private raw: RawFrames | undefined;
  private sent = 0;
  /** Per conversation, the messages this device saw that it may act on (kept across its restarts: the log does not forget them). */
  private readonly targets = new Map<string, Targets>();
  /** Chat-state operations issued, by kind, and refused ones this device discarded to unblock its conversation. */
  readonly operations: Record<ChatOperation, number> = { edit: 0, delete: 0, react: 0, read: 0, 'read-back': 0, convs: 0, forbidden: 0 };
  discarded = 0;
  private readonly discarding = new WeakSet<object>();

  constructor(private readonly settings: DeviceSettings) {}

  get user(): string {
    return this.settings.user;
  }

  get alive(): boolean {
    return this.client !== undefined;
  }

  async start(): Promise<void> {
    const { settings } = this;
    const fileStore = new FileClientStore(settings.storePath, { noSync: true });
    let identity = (await fileStore.load()).identity;
    if (!identity) {
      identity = { device: newDeviceId() };
      await fileStore.setIdentity(identity);
    }
    this.deviceId = identity.device;
    this.recorder ??= new DeviceRecorder(settings.history, settings.user, this.deviceId, settings.counters);
    // The tap sits inside the kill switch: it records what really crossed the wire.
    const socket = webSocketTransport(WebSocket as unknown as WebSocketConstructor);
    // The url is asked again at every connect: in a cluster run a device whose node is down goes to another, as behind a load balancer.
    const routed: Transport = { open: () => socket.open(settings.url()) };
    const wire = tapTransport(routed, this.recorder.tap());
    const switched = killable(wire, fileStore);
    this.raw = rawFrames(switched.transport);
    const client = new SequentClient({
      url: settings.url(),
      getToken: (device) => settings.token(settings.user, device),
      store: switched.store,
      transport: this.raw.transport,
      ackTimeoutMs: 3000,
      sendDeadlineMs: Number.POSITIVE_INFINITY,
      gapWaitMs: 300,
      backoff: { baseMs: 100, maxMs: 1500 },
      connectTimeoutMs: 3000,
      requestTimeoutMs: 5000,
      // A half-open connection (frames vanish, no close) must be given up within seconds, not minutes.
      pingIntervalMs: 2000,
      pingTimeoutMs: 2000,
    });
    // A refused edit, delete or reaction (another's message, a deleted one) would block the conversation
    // for good: drop it, as an app would. Checked on every send state change too: one refused while
    // sends ahead of it were still unacked blocks the conversation only once those are acked, and the
    // SDK emits no `blocked` event then.
    // Deferred: a `send` event fires in the middle of the SDK marking a conversation's sends failed,
    // and a discard then would resume none of those still to be marked.
    client.on('blocked', ({ conv }) => queueMicrotask(() => this.unblock(client, conv)));
    client.on('send', ({ handle }) => queueMicrotask(() => this.unblock(client, handle.conv)));
    client.on('message', ({ conv, entry }) => {
      this.targetsOf(conv).saw(entry, settings.user);
      // entries() is the view's own array (read-only to apps); trimming its front leaves its newest entries and order intact.
      const delivered = client.entries(conv) as unknown[];
      if (delivered.length > 2 * KEEP_DELIVERED) delivered.splice(0, delivered.length - KEEP_DELIVERED);
    });
    this.kill = switched.kill;
    this.client = client;
    settings.history.record({ type: 'client-start', user: settings.user, device: this.deviceId });
    await client.start();
  }

  /** The app dies: nothing more is sent, heard or written. */
  crash(): void {
    if (!this.client) return;
    this.settings.history.record({ type: 'client-kill', user: this.settings.user, device: this.deviceId });
    this.kill?.();
    const client = this.client;
    this.client = undefined;
    // Only to stop the dead instance's timers; its store and sockets are already cut off.
    void client.stop().catch(() => {});
  }

  send(conv: string): boolean {
    if (!this.client) return false;
    this.sent++;
    this.client.send(conv, { text: `${this.settings.user}/${this.settings.label} #${this.sent}`, at: Date.now() });
    return true;
  }

  private unblock(client: SequentClient, conv: string): void {
    const blocked = client.blocked(conv)[0];
    const head = blocked?.handles[0];
    if (!blocked?.discardable || !head || head.kind === 'msg' || this.discarding.has(head)) return;
    this.discarding.add(head);
    // Only the refused one: the messages blocked behind it move down a dseq and go out.
    head.discard().then(
      () => void this.discarded++,
      () => {},
    );
  }

  private targetsOf(conv: string): Targets {
    let targets = this.targets.get(conv);
    if (!targets) this.targets.set(conv, (targets = new Targets()));
    return targets;
  }

  /**
   * One chat-state operation in `conv`; false when there is nothing to act on
   * yet (no message seen, not connected), and the caller sends a message instead.
   */
  act(conv: string, operation: ChatOperation, rng: Prng): boolean {
    const client = this.client;
    if (!client) return false;
    const targets = this.targetsOf(conv);
    const done = (): boolean => {
      this.operations[operation]++;
      return true;
    };
    switch (operation) {
      case 'edit': {
        const seq = targets.ownOne(rng);
        if (seq === undefined) return false;
        client.edit(conv, seq, { text: `${this.settings.user}/${this.settings.label} edit ${++this.sent}` });
        return done();
      }
      case 'delete': {
        const seq = targets.ownOne(rng);
        if (seq === undefined) return false;
        client.delete(conv, seq);
        return done();
      }
      case 'react': {
        const seq = targets.anyOne(rng);
        if (seq === undefined) return false;
        client.react(conv, seq, rng.pick(REACTION_KEYS), rng.chance(0.7));
        return done();
      }
      case 'forbidden': {
        // Another user's message: the server must answer forbidden, and the log must never hold it.
        const seq = targets.otherOne(rng);
        if (seq === undefined) return false;
        if (rng.chance(0.5)) client.edit(conv, seq, { text: `not ${this.settings.user}'s to edit` });
        else client.delete(conv, seq);
        return done();
      }
      case 'read': {
        const last = client.conversations().find((c) => c.conv === conv)?.last ?? 0;
        if (last === 0) return false;
        // Forward, to somewhere between the cursor and the newest entry, as a screen scrolling down would.
        const from = Math.min(last, Math.max(1, client.cursor(conv)));
        client.markRead(conv, rng.int(from, last));
        return done();
      }
      case 'read-back': {
        // Below the position: the server must change nothing and answer with the current value.
        const read = client.conversations().find((c) => c.conv === conv)?.read ?? 0;
        if (read < 2 || !this.raw?.send({ t: 'read', conv, seq: rng.int(1, read - 1) })) return false;
        return done();
      }
      case 'convs':
        if (!this.raw?.send({ t: 'convs' })) return false;
        return done();
    }
  }

  /**
   * The conversation as this device's SDK folds it at the end: after a sync
   * to the newest entry and every page of older history loaded through the
   * SDK's own history(), so that its view covers the whole readable log.
   * Bodies are digested as in the history. Undefined when the SDK could not
   * read it (e.g. its user is no member any more).
   */
  async finalView(conv: string): Promise<FinalViewItem[] | undefined> {
    const client = this.client;
    if (!client) return undefined;
    try {
      await client.sync(conv);
      for (let page = 0; page < 10_000; page++) {
        const loaded = await client.history(conv, { limit: 1000 });
        if (!loaded.more) break;
      }
    } catch {
      return undefined;
    }
    return client
      .messages(conv)
      .filter((m) => m.kind === 'msg')
      .map((m) => ({
        seq: m.seq,
        from: m.from,
        body: m.deleted !== undefined || m.body === null ? null : bodyDigest(m.body),
        deleted: m.deleted !== undefined,
        reactions: Object.fromEntries(m.reactions.filter((r) => r.users.length > 0).map((r) => [r.key, [...r.users].sort()])),
      }));
  }

  /** Sends still on their way (a `failed` one, e.g. refused as forbidden after a removal, is settled). */
  pending(): number {
    return this.client?.pending().filter((handle) => handle.state === 'sending').length ?? 0;
  }

  /** Every send not acked yet, with why: still on its way, or failed (refused, or blocked behind a refused one). */
  unsettled(): { conv: string; cmid: string; dseq: number; state: 'sending' | 'failed'; reason: string }[] {
    return (this.client?.pending() ?? [])
      .filter((h) => h.state === 'sending' || h.state === 'failed')
      .map((h) => ({
        conv: h.conv,
        cmid: h.cmid,
        dseq: h.dseq,
        state: h.state as 'sending' | 'failed',
        reason: h.state === 'failed' ? `${h.error?.code ?? 'failed'}: ${h.error?.message ?? ''}` : 'not acked when the settle time ran out',
      }));
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    await client?.stop();
  }
}
