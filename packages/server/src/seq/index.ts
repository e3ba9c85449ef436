/**
 * sequent-server/seq: the sequence and id generators every ordering promise rests on
 * (docs/seq.md). Their backends are subpaths (`sequent-server/seq/sqlite`,
 * `sequent-server/seq/postgres`), so importing this loads no database driver.
 */
export {
  SEQ_ERROR_CODES,
  type SeqErrorCode,
  SeqError,
  LeaseHeldError,
  FencedError,
  LeaseExpiredError,
  SeqExhaustedError,
  SeqOverflowError,
  SeqClosedError,
} from './errors.js';
export { type Lease, type MetaFence, type SeqBackend, MAX_COUNTER } from './backends/types.js';
export { SequenceCounters, type SequenceCountersOptions, DEFAULT_COUNTER_OPTIONS, sectionIndex } from './counters.js';
export {
  MidGenerator,
  type MidGeneratorOptions,
  type MidFields,
  decodeMid,
  encodeMid,
  midWorkerSection,
  MidClockBackError,
  MidNotReadyError,
  MidTimeExhaustedError,
  NoWorkerIdError,
  MID_TIME_BITS,
  MID_WORKER_BITS,
  MID_SEQUENCE_BITS,
  MID_MAX_TIME,
  MID_MAX_WORKER,
  MID_MAX_SEQUENCE,
  DEFAULT_MID_EPOCH_MS,
} from './ids.js';
export { HybridClock, type HybridClockOptions, DEFAULT_MAX_DRIFT_MS } from './clock.js';
