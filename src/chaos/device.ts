/**
 * One device of a chaos run: an SDK client on a file store, behind a kill
 * switch that models the app dying (no stop(), no last writes, no goodbye),
 * restarted later from whatever its store had persisted.
 */
import WebSocket from 'ws';
import { FileClientStore } from '../client/file-store.js';
import { SequentClient } from '../client/client.js';
import type { ClientStore } from '../client/store.js';
import { newDeviceId } from '../client/ids.js';
import { tapTransport, webSocketTransport, type Transport, type TransportConnection, type WebSocketConstructor } from '../client/transport.js';
import type { HistoryRecorder } from './history.js';
import { DeviceRecorder, type RunCounters } from './recorder.js';

const deadConnection = (): TransportConnection => ({ send() {}, close() {}, onopen: null, onmessage: null, onclose: null, onerror: null });

/** Wraps a transport and a store so that `kill()` silences both at once, as a crash would. */
export function killSwitch(transport: Transport, store: ClientStore): { transport: Transport; store: ClientStore; kill(): void } {
  let dead = false;
  const live = new Set<TransportConnection>();
  const unlessDead =
    <A extends unknown[]>(write: (...args: A) => Promise<void>) =>
    (...args: A): Promise<void> =>
      dead ? Promise.resolve() : write(...args);
  return {
    transport: {
      open(url) {
        if (dead) return deadConnection();
        const inner = transport.open(url);
        live.add(inner);
        const outer: TransportConnection = {
          send: (text) => !dead && inner.send(text),
          close: (code, reason) => inner.close(code, reason),
          onopen: null,
          onmessage: null,
          onclose: null,
          onerror: null,
        };
        inner.onopen = () => !dead && outer.onopen?.();
        inner.onmessage = (text) => !dead && outer.onmessage?.(text);
        inner.onerror = (error) => !dead && outer.onerror?.(error);
        inner.onclose = (code, reason) => {
          live.delete(inner);
          if (!dead) outer.onclose?.(code, reason);
        };
        return outer;
      },
    },
    store: {
      load: () => store.load(),
      setIdentity: unlessDead((identity) => store.setIdentity(identity)),
      enqueue: unlessDead((entry) => store.enqueue(entry)),
      updateOutbox: unlessDead((entry) => store.updateOutbox(entry)),
      removeOutbox: unlessDead((conv, cmid) => store.removeOutbox(conv, cmid)),
      setCursor: unlessDead((conv, cursor) => store.setCursor(conv, cursor)),
      close: () => store.close(),
    },
    kill() {
      dead = true;
      // The process is gone: its sockets drop without a close frame (code 1006 on the server).
      for (const connection of live) connection.close(4000, 'app killed');
      live.clear();
    },
  };
}

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

  settingsUser(): string {
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
    const switched = killSwitch(wire, fileStore);
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

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    await client?.stop();
  }
}
