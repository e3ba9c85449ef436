/**
 * Who is online, and pushing committed entries to them. Entries arrive here
 * only after they are durable and in seq order per conversation, so every
 * connection sees one conversation's pushes in strictly increasing seq.
 */
import { encodeMsgFrame } from 'sequent-client/protocol';
import type { ServerMetrics } from './metrics.js';
import type { Committed } from './sequencer.js';
import type { Session } from './session.js';

export class Fanout {
  private readonly online = new Map<string, Set<Session>>();

  constructor(private readonly metrics: ServerMetrics) {}

  join(session: Session): void {
    let sessions = this.online.get(session.user);
    if (!sessions) {
      sessions = new Set();
      this.online.set(session.user, sessions);
    }
    sessions.add(session);
  }

  leave(session: Session): void {
    const sessions = this.online.get(session.user);
    if (!sessions) return;
    sessions.delete(session);
    if (sessions.size === 0) this.online.delete(session.user);
  }

  sessions(): Session[] {
    return [...this.online.values()].flatMap((set) => [...set]);
  }

  /** One frame, already spelled, to every online device of the users. */
  pushText(users: readonly string[], text: string): void {
    let bytes: Buffer | undefined;
    for (const user of users) {
      const sessions = this.online.get(user);
      if (!sessions) continue;
      for (const session of sessions) {
        if (session.closed) continue;
        bytes ??= Buffer.from(text);
        session.sendText(bytes);
      }
    }
  }

  deliver(batch: readonly Committed[]): void {
    for (const { entry, bodyJson, audience, originId } of batch) {
      let text: Buffer | undefined;
      for (const user of audience) {
        const sessions = this.online.get(user);
        if (!sessions) continue;
        for (const session of sessions) {
          if (session.id === originId || session.closed) continue;
          text ??= Buffer.from(encodeMsgFrame(entry, bodyJson));
          session.sendText(text);
          this.metrics.pushes.inc();
        }
      }
    }
  }
}
