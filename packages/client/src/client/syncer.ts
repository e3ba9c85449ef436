/**
 * Catching up from the durable log. On every (re)connect: the conversation
 * list — only the rows changed since the user's list version when one is
 * known (`convs since`, one request however many conversations there are),
 * the whole list otherwise — then `sync` each conversation whose readable
 * `last` is above its cursor, page by page, a few conversations at a time. Between connects: `sync` one conversation
 * whose gap stayed open too long. Entries go through the same path as pushes,
 * so dedup and order are the receive side's job, not this one's.
 */
import type { ConvSummary, Entry, ServerFrame } from '../protocol/frames.js';
import type { Request } from './connection.js';
import { startTimer } from './backoff.js';
import { SequentClientError } from './errors.js';
import type { ResolvedClientOptions } from './options.js';

export interface SyncerHooks {
  ask(frame: Request, timeoutMs: number): Promise<ServerFrame>;
  /** Where the conversation's receive side stands (its cursor). */
  cursorOf(conv: string): number;
  /** History up to `seq` is not readable for this user: stop waiting for it. */
  skipTo(conv: string, seq: number): void;
  accept(entry: Entry): void;
  /** The server's conversation list arrived (before any sync starts). */
  summaries(convs: ConvSummary[]): void;
  /** The user's list version the SDK is caught up to (undefined: ask for the whole list). */
  version(): number | undefined;
  /** Rows up to `version` were applied: keep it (with the rows) for the next catch-up. */
  versioned(version: number, total: number | undefined): void;
  /** The conversations to catch up: every known one whose readable last is above its cursor. */
  behind(): string[];
  error(error: SequentClientError): void;
}

/** Rows per `convs since` page. */
const CONVS_PAGE = 500;

/** A sync page refused as rate_limited is asked again after BASE × attempt ms (at most MAX), up to RETRIES times. */
const RATE_LIMITED_BASE_MS = 10;
const RATE_LIMITED_MAX_MS = 200;
const RATE_LIMITED_RETRIES = 50;

const pause = (ms: number): Promise<void> => new Promise((resolve) => startTimer(resolve, ms, true));

interface Running {
  again: boolean;
  done: Promise<void>;
}

/** The newest seq this user may read. */
export function readableLast(summary: Pick<ConvSummary, 'last' | 'until'>): number {
  return summary.until === undefined ? summary.last : Math.min(summary.last, summary.until);
}

export class Syncer {
  private readonly running = new Map<string, Running>();
  /** Per conversation, the server's last already reported as below this device's cursor. */
  private readonly reportedBehind = new Map<string, number>();

  constructor(
    private readonly options: ResolvedClientOptions,
    private readonly hooks: SyncerHooks,
  ) {}

  /**
   * convs, then every conversation that is behind, `syncConcurrency` at a time;
   * resolves when all are caught up (or failed). A slot moves on to its next
   * conversation as soon as the last page of the current one has arrived, before
   * that page is taken in: the server reads the next conversation's first page
   * while the SDK applies this one, instead of each waiting for the other once
   * per conversation. Each slot has one page asked at a time, so the reads
   * waiting on the server stay at most `syncConcurrency`.
   */
  async catchUp(): Promise<void> {
    await this.readList();
    const behind = this.hooks.behind();
    let next = 0;
    let active = 0;
    let lost: unknown;
    let finish!: () => void;
    const finished = new Promise<void>((resolve) => (finish = resolve));
    const settle = (): void => {
      if (active === 0 && (lost !== undefined || next >= behind.length)) finish();
    };
    const start = (): void => {
      if (lost !== undefined || next >= behind.length) return;
      const conv = behind[next++] as string;
      active++;
      let released = false;
      // Called synchronously when the conversation asks for nothing more, so that the next one's first page is on its way before this one's last is applied.
      const release = (): void => {
        if (released) return;
        released = true;
        start();
      };
      this.syncConv(conv, release)
        .catch((error: unknown) => {
          if (error instanceof SequentClientError && (error.code === 'connection_lost' || error.code === 'timeout')) lost ??= error;
          else this.hooks.error(asClientError(error, `sync of ${conv} failed`));
        })
        .finally(() => {
          active--;
          release();
          settle();
        });
    };
    const slots = Math.min(this.options.syncConcurrency, behind.length);
    for (let i = 0; i < slots; i++) start();
    settle();
    await finished;
    if (lost !== undefined) throw lost;
  }

  /**
   * The list rows changed since the known version (all of them without one),
   * page by page. Rows only ever move a conversation forward, so a reply that
   * crosses pushes does no harm.
   */
  async readList(): Promise<void> {
    let since = this.hooks.version();
    for (;;) {
      const request: Request = since === undefined ? { t: 'convs' } : { t: 'convs', since, limit: CONVS_PAGE };
      const reply = await this.hooks.ask(request, this.options.requestTimeoutMs);
      if (reply.t !== 'convs') throw replyError('convs', reply);
      for (const summary of reply.convs) this.checkNotBehind(summary.conv, readableLast(summary));
      this.hooks.summaries(reply.convs);
      if (reply.version === undefined) return; // a server without the chat state: the whole list every time
      this.hooks.versioned(reply.version, reply.unread);
      if (!reply.more || reply.version === since) return;
      since = reply.version;
    }
  }

  /**
   * A log only grows, so a server whose readable last is below what this device
   * already holds has lost acknowledged entries. Nothing here can repair that;
   * it must not pass silently.
   */
  private checkNotBehind(conv: string, last: number): void {
    const cursor = this.hooks.cursorOf(conv);
    if (last >= cursor || this.reportedBehind.get(conv) === last) return;
    this.reportedBehind.set(conv, last);
    this.hooks.error(
      new SequentClientError('server_behind', `the server says ${conv} ends at seq ${last}, but this device already holds it up to ${cursor}: the server lost acknowledged entries`),
    );
  }

  /**
   * Reads the conversation from its cursor to the server's `last`. One run per
   * conversation at a time; a call during a run makes the run go once more.
   */
  syncConv(conv: string, released?: () => void): Promise<void> {
    const current = this.running.get(conv);
    if (current) {
      current.again = true;
      return current.done;
    }
    const run: Running = { again: false, done: Promise.resolve() };
    run.done = (async () => {
      try {
        do {
          run.again = false;
          await this.readToLast(conv, released);
        } while (run.again);
      } finally {
        this.running.delete(conv);
      }
    })();
    this.running.set(conv, run);
    return run.done;
  }

  /**
   * The next page is asked for before this one is taken in: the server reads it
   * while the SDK delivers this one, instead of each side waiting for the other
   * (and, on a busy machine, for the scheduler) once per page. `released` is
   * called, synchronously, once the last page has arrived (nothing more to ask).
   */
  private async readToLast(conv: string, released?: () => void): Promise<void> {
    let after = this.hooks.cursorOf(conv);
    let asked = this.page(conv, after);
    for (;;) {
      let reply = await asked;
      for (let attempt = 1; reply.t === 'error' && reply.code === 'rate_limited' && attempt <= RATE_LIMITED_RETRIES; attempt++) {
        // More of this connection's reads wait on the server than it allows (its maxPendingReads
        // below what syncConcurrency asks at once): the page is asked again once some have been
        // answered, instead of leaving the conversation behind.
        await pause(Math.min(RATE_LIMITED_MAX_MS, RATE_LIMITED_BASE_MS * attempt));
        reply = await this.page(conv, after);
      }
      if (reply.t !== 'batch') throw replyError(`sync of ${conv}`, reply);
      this.checkNotBehind(conv, reply.last);
      const newest = reply.msgs.at(-1)?.seq;
      const more = newest !== undefined && newest < reply.last;
      if (more) asked = this.page(conv, newest);
      else released?.();
      try {
        const first = reply.msgs[0];
        // The log is gapless, so a first entry past after + 1 means what lies between is not readable for us.
        if (first && first.seq > after + 1) this.hooks.skipTo(conv, first.seq - 1);
        for (const msg of reply.msgs) {
          // The reply's entries were parsed for this call alone: named by the batch's conv in place, not
          // copied. Always, so that the entries the views keep share one conv string (its hash computed
          // once for every map keyed by conv) instead of each holding the copy the parse made.
          msg.conv = conv;
          this.hooks.accept(msg);
        }
      } catch (error) {
        // Nobody will wait for the page asked ahead: its failure must not go unhandled.
        if (more) asked.catch(() => undefined);
        throw error;
      }
      if (!more) return;
      after = newest;
    }
  }

  private page(conv: string, after: number): Promise<ServerFrame> {
    return this.hooks.ask({ t: 'sync', conv, after, limit: this.options.syncPageSize }, this.options.requestTimeoutMs);
  }
}

function replyError(what: string, reply: ServerFrame): SequentClientError {
  if (reply.t === 'error') return new SequentClientError(reply.code, `${what}: ${reply.message}`);
  return new SequentClientError('protocol', `${what}: unexpected reply ${reply.t}`);
}

function asClientError(error: unknown, message: string): SequentClientError {
  return error instanceof SequentClientError ? error : new SequentClientError('protocol', message, error);
}
