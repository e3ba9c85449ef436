/** Setup statements retried while the file is busy (WAL recovery by another process), and only then. */
import { describe, expect, it } from 'vitest';
import { retryWhileBusy } from '../../packages/server/src/db/sqlite-busy.js';

const busy = (code = 'SQLITE_BUSY') => Object.assign(new Error('database is locked'), { code });

describe('retryWhileBusy', () => {
  it('retries SQLITE_BUSY and SQLITE_BUSY_RECOVERY until the setup succeeds', () => {
    let calls = 0;
    const value = retryWhileBusy(() => {
      calls++;
      if (calls === 1) throw busy();
      if (calls === 2) throw busy('SQLITE_BUSY_RECOVERY');
      return 'wal';
    }, 1000);
    expect([value, calls]).toEqual(['wal', 3]);
  });

  it('rethrows any other error at once', () => {
    let calls = 0;
    expect(() =>
      retryWhileBusy(() => {
        calls++;
        throw Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR' });
      }, 1000),
    ).toThrow(/disk I\/O/);
    expect(calls).toBe(1);
  });

  it('gives up with the busy error once the timeout has passed', () => {
    const started = Date.now();
    expect(() =>
      retryWhileBusy(() => {
        throw busy();
      }, 150),
    ).toThrow(/locked/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
  });
});
