/**
 * Group creation and membership changes. Each is one `system` entry in the
 * group's log, sequenced like any message, so a change takes effect exactly at
 * its seq for reads, writes and pushes alike.
 */
import type { CreateFrame, MembersFrame } from 'sequent-client/protocol';
import type { Conversations } from './conversations.js';
import { CommitFailed, type Sequencer } from './sequencer.js';
import type { Session } from './session.js';

export class Groups {
  draining = false;

  constructor(
    private readonly conversations: Conversations,
    private readonly sequencer: Sequencer,
  ) {}

  async create(session: Session, frame: CreateFrame): Promise<void> {
    const state = await this.conversations.get(frame.conv);
    if (!state) return session.error(frame.id, 'bad_request', `malformed conversation id ${frame.conv}`);
    if (state.ref.kind !== 'group') {
      return session.error(frame.id, 'bad_request', 'a dm: conversation exists implicitly and cannot be created');
    }
    if (state.exists) return session.error(frame.id, 'conflict', `${frame.conv} already exists`);
    if (this.draining) return session.error(frame.id, 'unavailable', 'server is shutting down; retry after reconnecting');
    const members = [...new Set([session.user, ...frame.members])].sort();
    const entry = this.sequencer.append(
      state,
      { kind: 'system', from: session.user, dev: session.device, body: { op: 'create', members }, add: members },
      session.id,
    );
    await this.reply(session, frame.id, frame.conv, entry);
  }

  async members(session: Session, frame: MembersFrame): Promise<void> {
    const state = await this.conversations.get(frame.conv);
    if (!state) return session.error(frame.id, 'bad_request', `malformed conversation id ${frame.conv}`);
    if (state.ref.kind !== 'group') return session.error(frame.id, 'bad_request', 'the members of a dm: conversation are fixed');
    if (!state.exists) return session.error(frame.id, 'not_found', `no conversation ${frame.conv}`);
    if (!state.isMember(session.user)) {
      return session.error(frame.id, 'forbidden', `${session.user} is not a member of ${frame.conv}`);
    }
    const add = [...new Set(frame.add ?? [])];
    const remove = [...new Set(frame.remove ?? [])];
    if (add.length === 0 && remove.length === 0) return session.error(frame.id, 'bad_request', 'members needs add or remove');
    const both = add.filter((user) => remove.includes(user));
    if (both.length > 0) return session.error(frame.id, 'bad_request', `${both.join(', ')} both added and removed`);
    if (this.draining) return session.error(frame.id, 'unavailable', 'server is shutting down; retry after reconnecting');

    // Adding a member or removing a non-member changes nothing, so it is left out of the entry.
    const effectiveAdd = add.filter((user) => !state.isMember(user)).sort();
    const effectiveRemove = remove.filter((user) => state.isMember(user)).sort();
    if (effectiveAdd.length === 0 && effectiveRemove.length === 0) {
      // Nothing to change: the answer names the seq at which the asked-for state already holds.
      return session.send({ t: 'ok', id: frame.id, conv: frame.conv, seq: state.last });
    }
    const entry = this.sequencer.append(
      state,
      {
        kind: 'system',
        from: session.user,
        dev: session.device,
        body: { op: 'members', add: effectiveAdd, remove: effectiveRemove },
        add: effectiveAdd,
        remove: effectiveRemove,
      },
      session.id,
    );
    await this.reply(session, frame.id, frame.conv, entry);
  }

  private async reply(session: Session, id: number, conv: string, entry: Promise<{ seq: number }>): Promise<void> {
    try {
      const { seq } = await entry;
      session.send({ t: 'ok', id, conv, seq });
    } catch (error) {
      session.error(id, error instanceof CommitFailed ? 'unavailable' : 'internal', error instanceof Error ? error.message : 'commit failed');
    }
  }
}
