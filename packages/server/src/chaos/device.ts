/**
 * One device of a chaos run: an SDK client on a file store, behind a kill
 * switch that models the app dying (no stop(), no last writes, no goodbye),
 * restarted later from whatever its store had persisted.
 */
import WebSocket from 'ws';
import { FileClientStore } from 'sequent-client/file-store';
import { newDeviceId, SequentClient, tapTransport, webSocketTransport, type WebSocketConstructor } from 'sequent-client';
import type { HistoryRecorder } from './history.js';
import { killable } from './killable.js';
import { DeviceRecorder, type RunCounters } from './recorder.js';

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
  private sent = 0;

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
    const wire = tapTransport(webSocketTransport(WebSocket as unknown as WebSocketConstructor), this.recorder.tap());
    const switched = killable(wire, fileStore);
    const client = new SequentClient({
      url: settings.url(),
      getToken: (device) => settings.token(settings.user, device),
      store: switched.store,
      transport: switched.transport,
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
    client.on('message', ({ conv }) => {
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
