/**
 * Errors of the sequence generators. Callers switch on `code`, never on the
 * message or the class name, so each code keeps its meaning for good.
 */

export const SEQ_ERROR_CODES = {
  lease_held: 'Another live holder has the lease of this section; retry after it expires or is released.',
  fenced: 'The lease was taken over (its epoch moved on): this holder must stop handing out numbers.',
  lease_expired: 'The lease could not be renewed before it ran out: this holder stopped handing out numbers.',
  seq_exhausted: 'No durably persisted number is left for this key right now; await ready(key) or use nextAsync(key).',
  seq_overflow: 'The counter reached Number.MAX_SAFE_INTEGER (2^53 - 1) and cannot grow further.',
  config_mismatch: 'The generator was opened with a layout (such as the number of sections) other than the one its data was written with.',
  closed: 'The generator was closed.',
  clock_moved_back: "The wall clock moved back by more than maxBackwardMs and the ids policy is 'refuse': no id until it catches up.",
  mid_not_ready: 'No id can be issued until the timestamp high-water mark above it is durable; await ready().',
  mid_time_exhausted: 'The 42-bit time field of the ids has run out for this epoch.',
  no_worker_id: 'Every worker id is leased by a live holder.',
} as const;

export type SeqErrorCode = keyof typeof SEQ_ERROR_CODES;

export class SeqError extends Error {
  readonly code: string;

  constructor(code: SeqErrorCode | (string & {}), message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

export class LeaseHeldError extends SeqError {
  constructor(
    readonly section: string,
    readonly holder: string,
    readonly expiresAt: number,
  ) {
    super('lease_held', `section ${JSON.stringify(section)} is leased by ${JSON.stringify(holder)} until ${new Date(expiresAt).toISOString()}`);
  }
}

export class FencedError extends SeqError {
  constructor(
    readonly section: string,
    readonly epoch: number,
    readonly currentEpoch: number | undefined,
  ) {
    super(
      'fenced',
      `section ${JSON.stringify(section)}: epoch ${epoch} was fenced off (the section is now at epoch ${currentEpoch ?? 'none'}); this holder no longer owns it`,
    );
  }
}

export class LeaseExpiredError extends SeqError {
  constructor(readonly section: string, cause?: unknown) {
    super('lease_expired', `section ${JSON.stringify(section)}: the lease ran out before it could be renewed; this holder no longer hands out numbers`, { cause });
  }
}

export class SeqExhaustedError extends SeqError {
  constructor(readonly key: string, readonly max: number) {
    super('seq_exhausted', `key ${JSON.stringify(key)}: every number up to the persisted max ${max} is used and the next raise has not landed yet; await ready(key) or use nextAsync(key)`);
  }
}

export class SeqOverflowError extends SeqError {
  constructor(readonly section: string) {
    super('seq_overflow', `section ${JSON.stringify(section)} reached Number.MAX_SAFE_INTEGER; no larger safe integer exists`);
  }
}

export class SeqClosedError extends SeqError {
  constructor(what: string) {
    super('closed', `${what} is closed`);
  }
}
