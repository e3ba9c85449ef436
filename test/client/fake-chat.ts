/**
 * The chat-state rules of the fake server (protocol "Version 1, additions"):
 * which edit, delete or reaction a send may be, what sync shows of edited and
 * deleted messages, read positions, unread counts and the per-user list
 * version. The FakeServer keeps the logs and calls these.
 */
import type { ClientFrame, Entry, ErrorFrame } from '../../packages/client/src/protocol/frames.js';

type SendFrame = Extract<ClientFrame, { t: 'send' }>;

/** Why the server refuses an edit, delete or react send, or undefined when it takes it. */
export function refuseAction(log: readonly Entry[], frame: SendFrame, user: string): Pick<ErrorFrame, 'code' | 'message'> | undefined {
  const kind = frame.kind ?? 'msg';
  if (kind === 'msg') return frame.ref === undefined ? undefined : { code: 'bad_request', message: 'ref on a msg' };
  if (frame.ref === undefined) return { code: 'bad_request', message: `${kind} needs ref` };
  const target = log[frame.ref - 1];
  if (!target || target.kind !== 'msg') return { code: 'not_found', message: `no msg at ${frame.ref}` };
  if ((kind === 'edit' || kind === 'delete') && target.from !== user) return { code: 'forbidden', message: 'not the author' };
  if (deleteOf(log, target.seq) !== undefined) return { code: 'conflict', message: 'deleted' };
  if (kind === 'react') {
    const body = frame.body as { key?: unknown; on?: unknown } | null;
    if (!body || typeof body.key !== 'string' || body.key.length < 1 || body.key.length > 32 || typeof body.on !== 'boolean') {
      return { code: 'bad_request', message: 'react body' };
    }
  }
  return undefined;
}

function deleteOf(log: readonly Entry[], seq: number): number | undefined {
  return log.find((e) => e.kind === 'delete' && e.ref === seq)?.seq;
}

/** An entry as sync returns it: a deleted msg and its edits without content, an edited msg naming its newest edit. */
export function synced(log: readonly Entry[], entry: Entry): Entry {
  const copy = { ...entry };
  const target = entry.kind === 'msg' ? entry.seq : entry.kind === 'edit' ? entry.ref : undefined;
  if (target === undefined) return copy;
  const deleted = deleteOf(log, target);
  if (deleted !== undefined) {
    copy.body = null;
    copy.deleted = deleted;
  }
  if (entry.kind === 'msg') {
    const edit = log.filter((e) => e.kind === 'edit' && e.ref === entry.seq).at(-1);
    if (edit) copy.edited = edit.seq;
  }
  return copy;
}

/** msg entries in (read, last] by other users, not deleted. */
export function unreadIn(log: readonly Entry[], read: number, last: number, user: string): number {
  return log.slice(read, last).filter((e) => e.kind === 'msg' && e.from !== user && deleteOf(log, e.seq) === undefined).length;
}

interface ReadPosition {
  own: number;
  public: number;
}

/** Read positions and list versions, per user. */
export class FakeChatState {
  private counter = 0;
  private readonly changedAt = new Map<string, Map<string, number>>();
  private readonly positions = new Map<string, ReadPosition>();

  /** A row of each of these users' lists changed. */
  touch(conv: string, users: Iterable<string>): void {
    const version = ++this.counter;
    for (const user of users) {
      let rows = this.changedAt.get(user);
      if (!rows) {
        rows = new Map();
        this.changedAt.set(user, rows);
      }
      rows.set(conv, version);
    }
  }

  version(user: string): number {
    return Math.max(0, ...(this.changedAt.get(user)?.values() ?? []));
  }

  /** The user's rows changed after `since`, oldest change first. */
  changedSince(user: string, since: number): string[] {
    return [...(this.changedAt.get(user) ?? [])].filter(([, at]) => at > since).sort((a, b) => a[1] - b[1]).map(([conv]) => conv);
  }

  changedAtOf(user: string, conv: string): number {
    return this.changedAt.get(user)?.get(conv) ?? 0;
  }

  read(user: string, conv: string): ReadPosition {
    return this.positions.get(`${user}\u0000${conv}`) ?? { own: 0, public: 0 };
  }

  /** Moves forward; returns true when it moved. */
  moveRead(user: string, conv: string, seq: number, isPrivate: boolean): boolean {
    const key = `${user}\u0000${conv}`;
    const position = this.read(user, conv);
    if (seq <= position.own) return false;
    this.positions.set(key, { own: seq, public: isPrivate ? position.public : seq });
    this.touch(conv, [user]);
    return true;
  }
}
