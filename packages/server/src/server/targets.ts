/**
 * Who may edit, delete or react to which entry. The store says what the target
 * is (immutable: its kind and author) and whether a committed delete removed it;
 * the owner's memory adds the deletes that have a seq but may not be durable
 * yet. Checked when the send takes its seq, so effects follow seq order.
 */
import type { ErrorCode, SendFrame } from 'sequent-client/protocol';
import type { EntryMeta } from '../store/index.js';
import type { ConvState } from './owner.js';

/** A send that acts on an earlier entry, and what the store said of that entry (null: no such seq). */
export interface Target {
  meta: EntryMeta | null;
}

export function actsOnEntry(frame: SendFrame): boolean {
  return frame.ref !== undefined && frame.kind !== undefined && frame.kind !== 'msg';
}

export type Refusal = { code: ErrorCode; message: string };

export function targetRefusal(state: ConvState, user: string, frame: SendFrame, target: Target): Refusal | undefined {
  const ref = frame.ref!;
  const { meta } = target;
  if (!meta || meta.kind !== 'msg') return { code: 'not_found', message: `${state.conv} has no message at seq ${ref}` };
  const range = state.readableRange(user);
  if (!range || ref < range.from || ref > range.until) return { code: 'forbidden', message: `${user} may not read seq ${ref} of ${state.conv}` };
  if (frame.kind !== 'react' && meta.from !== user) return { code: 'forbidden', message: `only ${meta.from} may ${frame.kind} seq ${ref}` };
  const deletedAt = meta.deleted ?? state.deletedAt(ref);
  if (deletedAt !== undefined) return { code: 'conflict', message: `seq ${ref} was deleted at seq ${deletedAt}` };
  return undefined;
}
