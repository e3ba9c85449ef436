/**
 * Turns the frames one device's SDK client sends and receives into history
 * events. It sits on the transport seam (tapTransport), so what it records is
 * what crossed the wire, not what the client believes.
 */
import type { TransportTap } from 'sequent-client';
import type { Entry } from 'sequent-client/protocol';
import { bodyDigest, toHistoryEntry, type HistoryRecorder, type InjectedMark } from './history.js';

type Frame = Record<string, unknown> & { t?: unknown; id?: unknown };

interface Outstanding {
  frame: Frame;
  sync?: string;
  answered?: boolean;
  /** when the request went out, on the history's clock (read and convs answers are judged in real time) */
  sentAt: number;
}

const CHAT_KINDS = new Set(['edit', 'delete', 'react']);

/** Answered requests are kept this long per connection, so that a second answer (a duplicate) is still recognised. */
const KEEP_ANSWERED = 256;

/** The fault proxy marks a frame it duplicated or held back (see proxy.ts): not the server's doing. */
function injectedMark(frame: Frame): InjectedMark | undefined {
  const mark = frame['_chaos'];
  return mark === 'dup' || mark === 'reorder' ? mark : undefined;
}

function parse(text: string): Frame | undefined {
  try {
    const value = JSON.parse(text) as unknown;
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Frame) : undefined;
  } catch {
    return undefined;
  }
}

/** A page of older history names its `before`; the log checker judges it as such, not as a sync from 0. */
const before = (frame: Frame): { before?: number } => (typeof frame['before'] === 'number' ? { before: frame['before'] } : {});

const strings = (value: unknown): string[] => (Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : []);

/** Counts shared by every device of a run. */
export interface RunCounters {
  connections: number;
  syncs: number;
}

export class DeviceRecorder {
  /** Send attempts per (conv, cmid), across restarts of this device's client. */
  private readonly attempts = new Map<string, number>();
  /** Per connection, request ids in the order they were first answered. */
  private readonly answered = new Map<number, number[]>();

  private answeredOrder(n: number): number[] {
    let list = this.answered.get(n);
    if (!list) this.answered.set(n, (list = []));
    return list;
  }

  constructor(
    private readonly history: HistoryRecorder,
    readonly user: string,
    readonly device: string,
    private readonly counters: RunCounters,
  ) {}

  /** A tap for one client instance; connections get run-wide names like "u1/d2#7". */
  tap(): TransportTap {
    const names = new Map<number, string>();
    const outstanding = new Map<number, Map<number, Outstanding>>();
    const who = { user: this.user, device: this.device };
    const nameOf = (n: number) => names.get(n) ?? `${this.user}/${this.device}#?${n}`;
    return {
      opened: (n) => {
        const conn = `${this.user}/${this.device}#${++this.counters.connections}`;
        names.set(n, conn);
        outstanding.set(n, new Map());
        this.history.record({ type: 'connect', ...who, conn });
      },
      sent: (n, text) => {
        const frame = parse(text);
        if (!frame || typeof frame.id !== 'number') return;
        const conn = nameOf(n);
        const pending: Outstanding = { frame, sentAt: this.history.now() };
        if (frame.t === 'send' && typeof frame['conv'] === 'string' && typeof frame['cmid'] === 'string') {
          const key = `${frame['conv']}\u0000${frame['cmid']}`;
          const attempt = (this.attempts.get(key) ?? 0) + 1;
          this.attempts.set(key, attempt);
          const kind = frame['kind'];
          const chat = typeof kind === 'string' && CHAT_KINDS.has(kind) ? { kind: kind as 'edit' | 'delete' | 'react', ref: Number(frame['ref']) } : {};
          this.history.record({
            type: 'send', ...who, conv: frame['conv'], cmid: frame['cmid'], dseq: Number(frame['dseq']), body: bodyDigest(frame['body']), conn, attempt, ...chat,
          });
        } else if (frame.t === 'sync' && typeof frame['conv'] === 'string') {
          pending.sync = `s${++this.counters.syncs}`;
          this.history.record({
            type: 'sync-start', ...who, sync: pending.sync, conv: frame['conv'], after: Number(frame['after'] ?? 0), limit: Number(frame['limit'] ?? 100), ...before(frame), conn,
          });
        }
        outstanding.get(n)?.set(frame.id, pending);
      },
      received: (n, text) => {
        const frame = parse(text);
        if (!frame) return;
        const conn = nameOf(n);
        const injected = injectedMark(frame);
        if (frame.t === 'msg') {
          const { t: _t, _chaos: _mark, ...entry } = frame;
          this.history.record({ type: 'push', ...who, conn, conv: String(frame['conv']), entry: toHistoryEntry(entry as unknown as Entry), ...(injected ? { injected } : {}) });
          return;
        }
        if (frame.t === 'read' && typeof frame.id !== 'number') {
          this.history.record({ type: 'read-push', ...who, conn, conv: String(frame['conv']), reader: String(frame['user']), seq: Number(frame['seq']), ...(injected ? { injected } : {}) });
          return;
        }
        if (typeof frame.id !== 'number') return;
        const waiting = outstanding.get(n);
        const request = waiting?.get(frame.id);
        if (!request || !waiting) return;
        // Every answer is recorded, a second one too: a dedup answer must say what the first said.
        const first = !request.answered;
        request.answered = true;
        this.answer(request, frame, conn, injected, first);
        if (first) {
          this.answeredOrder(n).push(frame.id);
          const old = this.answeredOrder(n);
          if (old.length > KEEP_ANSWERED) waiting.delete(old.shift()!);
        }
      },
      closed: (n, code, reason) => {
        const conn = nameOf(n);
        // create/members never answered: the change may or may not have happened.
        for (const request of outstanding.get(n)?.values() ?? []) if (!request.answered) this.membership(request.frame, undefined);
        this.answered.delete(n);
        outstanding.delete(n);
        this.history.record({ type: 'disconnect', ...who, conn, code, reason });
      },
    };
  }

  private answer(request: Outstanding, reply: Frame, conn: string, injected: InjectedMark | undefined, first: boolean): void {
    const who = { user: this.user, device: this.device };
    const asked = request.frame;
    if (asked.t === 'send') {
      const base = { ...who, conv: String(asked['conv']), cmid: String(asked['cmid']), dseq: Number(asked['dseq']), conn };
      if (reply.t === 'ack') {
        this.history.record({ type: 'ack', ...base, seq: Number(reply['seq']), mid: String(reply['mid']), ts: Number(reply['ts']), ...(injected ? { injected } : {}) });
      } else if (reply.t === 'error') {
        const expected = typeof reply['expected'] === 'number' ? { expected: reply['expected'] } : {};
        this.history.record({ type: 'error', ...base, code: String(reply['code']), ...expected });
      }
    } else if (asked.t === 'sync' && request.sync && reply.t === 'batch') {
      const entries = Array.isArray(reply['msgs']) ? (reply['msgs'] as Entry[]).map((e) => toHistoryEntry(e)) : [];
      this.history.record({
        type: 'sync-result', ...who, sync: request.sync, conv: String(asked['conv']), after: Number(asked['after'] ?? 0), limit: Number(asked['limit'] ?? 100), ...before(asked), entries, last: Number(reply['last']),
      });
    } else if (asked.t === 'read' && reply.t === 'ok') {
      this.history.record({ type: 'read-result', ...who, conv: String(asked['conv']), asked: Number(asked['seq']), seq: Number(reply['seq']), sentAt: request.sentAt, conn });
    } else if (asked.t === 'convs' && reply.t === 'convs') {
      const rows = Array.isArray(reply['convs']) ? (reply['convs'] as Frame[]) : [];
      this.history.record({
        type: 'convs-result',
        ...who,
        sentAt: request.sentAt,
        ...(typeof asked['since'] === 'number' ? { since: asked['since'] } : {}),
        version: Number(reply['version'] ?? 0),
        full: reply['full'] === true || typeof asked['since'] !== 'number',
        more: reply['more'] === true,
        ...(reply['truncated'] === true ? { truncated: true as const } : {}),
        // A server without the chat state sends no read/unread: those rows are not judged.
        rows: rows.map((row) => ({
          conv: String(row['conv']),
          last: Number(row['last']),
          ...(typeof row['read'] === 'number' ? { read: row['read'] } : {}),
          ...(typeof row['unread'] === 'number' ? { unread: row['unread'] } : {}),
        })),
        ...(typeof reply['unread'] === 'number' ? { unread: reply['unread'] } : {}),
        conn,
      });
    } else if ((asked.t === 'create' || asked.t === 'members') && first) {
      this.membership(asked, reply.t === 'ok' ? Number(reply['seq']) : undefined, reply.t === 'error' ? String(reply['code']) : undefined);
    }
  }

  private membership(asked: Frame, seq: number | undefined, code?: string): void {
    if (asked.t !== 'create' && asked.t !== 'members') return;
    this.history.record({
      type: 'membership',
      user: this.user,
      conv: String(asked['conv']),
      op: asked.t,
      add: asked.t === 'create' ? strings(asked['members']) : strings(asked['add']),
      remove: strings(asked['remove']),
      ...(seq === undefined ? {} : { seq }),
      ...(code === undefined ? {} : { code }),
    });
  }
}
