/**
 * A plain protocol session straight to the server (no proxy, no SDK), for
 * what the harness must learn for itself: the final read of every device's
 * log, and the truth about a group's membership after a change that may or
 * may not have happened. Every wait has a timeout, every loop a bound.
 */
import WebSocket from 'ws';
import type { Entry } from 'sequent-client/protocol';
import { toHistoryEntry, type HistoryEntry, type HistoryRecorder } from './history.js';

/** Where a read's pages are recorded as `sync-start`/`sync-result` of a device, so the checker judges them too. */
export interface ReadRecording {
  history: HistoryRecorder;
  user: string;
  device: string;
  /** unique per run */
  syncId: () => string;
}

type Frame = Record<string, unknown>;

export class DirectSession {
  private nextId = 1;
  private readonly waiting = new Map<number, (frame: Frame | undefined) => void>();

  private constructor(private readonly socket: WebSocket) {
    socket.on('message', (data) => {
      let frame: Frame;
      try {
        frame = JSON.parse(data.toString()) as Frame;
      } catch {
        return;
      }
      const id = frame['id'];
      const resolve = typeof id === 'number' ? this.waiting.get(id) : undefined;
      if (resolve) {
        this.waiting.delete(id as number);
        resolve(frame);
      }
    });
    socket.on('close', () => {
      for (const resolve of this.waiting.values()) resolve(undefined);
      this.waiting.clear();
    });
  }

  /** Opens and says hello; throws when the server is not there or refuses the token. */
  static async open(url: string, token: string, timeoutMs = 5000): Promise<DirectSession> {
    const socket = new WebSocket(url);
    socket.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('connect timeout')), timeoutMs);
      socket.once('open', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
    const session = new DirectSession(socket);
    const welcome = await session.ask({ t: 'hello', proto: 1, token }, timeoutMs);
    if (welcome['t'] !== 'welcome') {
      session.close();
      throw new Error(`hello refused: ${JSON.stringify(welcome)}`);
    }
    return session;
  }

  /** One request and its answer; throws on timeout or a closed connection. */
  ask(frame: Frame, timeoutMs = 5000): Promise<Frame> {
    return new Promise<Frame>((resolve, reject) => {
      const id = this.nextId++;
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`no answer to ${String(frame['t'])} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, (reply) => {
        clearTimeout(timer);
        if (reply === undefined) reject(new Error('connection closed before the reply'));
        else resolve(reply);
      });
      this.socket.send(JSON.stringify({ ...frame, id }));
    });
  }

  /** The conversation's entries after `after`, paged; an `error` answer is returned as such. */
  async readLog(conv: string, after = 0, maxPages = 10_000, recording?: ReadRecording): Promise<{ entries: HistoryEntry[]; last: number } | { error: string }> {
    const entries: HistoryEntry[] = [];
    let from = after;
    const limit = 1000;
    for (let page = 0; page < maxPages; page++) {
      const sync = recording?.syncId();
      const who = recording ? { user: recording.user, device: recording.device } : undefined;
      if (recording && who && sync) recording.history.record({ type: 'sync-start', ...who, sync, conv, after: from, limit });
      const batch = await this.ask({ t: 'sync', conv, after: from, limit });
      if (batch['t'] !== 'batch') return { error: `${String(batch['code'] ?? batch['t'])}: ${String(batch['message'] ?? '')}` };
      const msgs = batch['msgs'] as Entry[];
      const got = msgs.map((m) => toHistoryEntry(m));
      entries.push(...got);
      const last = Number(batch['last']);
      if (recording && who && sync) recording.history.record({ type: 'sync-result', ...who, sync, conv, after: from, limit, entries: got, last });
      const newest = msgs.at(-1)?.seq ?? from;
      if (msgs.length === 0 || newest >= last) return { entries, last };
      from = newest;
    }
    return { error: `more than ${maxPages} pages` };
  }

  close(): void {
    this.socket.close();
  }
}

/** Members after the log's system entries, applied in seq order to `members` (changed in place). */
export function applySystemEntries(members: Set<string>, entries: readonly HistoryEntry[]): void {
  for (const e of entries) {
    if (e.kind !== 'system') continue;
    const body = e.body as { op?: string; members?: string[]; add?: string[]; remove?: string[] } | null;
    if (body?.op === 'create') {
      members.clear();
      for (const u of [e.from, ...(body.members ?? [])]) members.add(u);
    } else if (body?.op === 'members') {
      for (const u of body.remove ?? []) members.delete(u);
      for (const u of body.add ?? []) members.add(u);
    }
  }
}
