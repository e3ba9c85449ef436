/**
 * Group creation and membership changes. Each is one `system` entry in the
 * group's log, sequenced like any message, so a change takes effect exactly at
 * its seq for reads, writes and pushes alike.
 */
import type { CreateFrame, MembersFrame } from 'sequent-client/protocol';
import type { ConversationOwner } from './owner.js';
import { CommitFailed, type Sequencer } from './sequencer.js';
import type { Origin } from './origin.js';

export class Groups {
  draining = false;

  constructor(
    private readonly conversations: ConversationOwner,
    private readonly sequencer: Sequencer,
  ) {}

  async create(origin: Origin, frame: CreateFrame): Promise<void> {
    const state = await this.conversations.get(frame.conv);
    if (!state) return origin.error(frame.id, 'bad_request', `malformed conversation id ${frame.conv}`);
    if (state.ref.kind !== 'group') {
      return origin.error(frame.id, 'bad_request', 'a dm: conversation exists implicitly and cannot be created');
    }
    if (state.exists) {
      // Its creation may still be committing (a retry of the same create): say "exists" only once it does.
      if (!(await state.untilDurable(1))) return origin.error(frame.id, 'unavailable', `${frame.conv} is reloading; retry`);
      return origin.error(frame.id, 'conflict', `${frame.conv} already exists`);
    }
    if (this.draining) return origin.error(frame.id, 'unavailable', 'server is shutting down; retry after reconnecting');
    const members = [...new Set([origin.user, ...frame.members])].sort();
    const entry = this.sequencer.append(
      state,
      { kind: 'system', from: origin.user, dev: origin.device, body: { op: 'create', members }, add: members },
      origin.connection,
    );
    await this.reply(origin, frame.id, frame.conv, entry);
  }

  async members(origin: Origin, frame: MembersFrame): Promise<void> {
    const state = await this.conversations.get(frame.conv);
    if (!state) return origin.error(frame.id, 'bad_request', `malformed conversation id ${frame.conv}`);
    if (state.ref.kind !== 'group') return origin.error(frame.id, 'bad_request', 'the members of a dm: conversation are fixed');
    if (!state.exists) return origin.error(frame.id, 'not_found', `no conversation ${frame.conv}`);
    if (!state.isMember(origin.user)) {
      return origin.error(frame.id, 'forbidden', `${origin.user} is not a member of ${frame.conv}`);
    }
    const add = [...new Set(frame.add ?? [])];
    const remove = [...new Set(frame.remove ?? [])];
    if (add.length === 0 && remove.length === 0) return origin.error(frame.id, 'bad_request', 'members needs add or remove');
    const both = add.filter((user) => remove.includes(user));
    if (both.length > 0) return origin.error(frame.id, 'bad_request', `${both.join(', ')} both added and removed`);
    if (this.draining) return origin.error(frame.id, 'unavailable', 'server is shutting down; retry after reconnecting');

    // Adding a member or removing a non-member changes nothing, so it is left out of the entry.
    const effectiveAdd = add.filter((user) => !state.isMember(user)).sort();
    const effectiveRemove = remove.filter((user) => state.isMember(user)).sort();
    if (effectiveAdd.length === 0 && effectiveRemove.length === 0) {
      // Nothing to change: the answer names the seq at which the asked-for state already holds. Memory is
      // as of the head, which may hold the very change this retries, still committing: answer once it is
      // durable, never for a change a failed commit takes back.
      const head = state.last;
      if (!(await state.untilDurable(head))) return origin.error(frame.id, 'unavailable', `${frame.conv} is reloading; retry`);
      return origin.ok(frame.id, frame.conv, head);
    }
    const entry = this.sequencer.append(
      state,
      {
        kind: 'system',
        from: origin.user,
        dev: origin.device,
        body: { op: 'members', add: effectiveAdd, remove: effectiveRemove },
        add: effectiveAdd,
        remove: effectiveRemove,
      },
      origin.connection,
    );
    await this.reply(origin, frame.id, frame.conv, entry);
  }

  private async reply(origin: Origin, id: number, conv: string, entry: Promise<{ seq: number }>): Promise<void> {
    try {
      const { seq } = await entry;
      origin.ok(id, conv, seq);
    } catch (error) {
      origin.error(id, error instanceof CommitFailed ? 'unavailable' : 'internal', error instanceof Error ? error.message : 'commit failed');
    }
  }
}
