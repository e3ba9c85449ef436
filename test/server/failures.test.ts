/** How unexpected failures are answered: a database that cannot be reached right now is `unavailable` (retry), a bug is `internal`. Real PostgreSQL errors. */
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { failureCode } from '../../packages/server/src/server/failures.js';
import { POSTGRES_URL, serviceAvailable } from '../support/services.js';

const available = await serviceAvailable('postgres', POSTGRES_URL);

async function errorOf(work: () => Promise<unknown>): Promise<unknown> {
  try {
    await work();
  } catch (error) {
    return error;
  }
  throw new Error('expected a failure');
}

describe('failure codes', () => {
  it('a bug is internal', () => {
    expect(failureCode(new TypeError('x is undefined'))).toBe('internal');
    expect(failureCode('thrown string')).toBe('internal');
  });

  it.skipIf(!available)('a refused connection, a session the server ended and a statement timeout are unavailable; a bad statement is internal', async () => {
    const refused = await errorOf(() => new pg.Client({ connectionString: 'postgres://postgres@127.0.0.1:1/test' }).connect());
    expect(failureCode(refused)).toBe('unavailable');

    const victim = new pg.Client({ connectionString: POSTGRES_URL });
    victim.on('error', () => undefined);
    await victim.connect();
    const { rows } = await victim.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    const admin = new pg.Client({ connectionString: POSTGRES_URL });
    await admin.connect();
    await admin.query('SELECT pg_terminate_backend($1)', [rows[0]!.pid]);
    const ended = await errorOf(() => victim.query('SELECT 1'));
    expect(failureCode(ended)).toBe('unavailable');

    const timedOut = await errorOf(() => admin.query("SET statement_timeout = '50ms'; SELECT pg_sleep(1)"));
    expect(failureCode(timedOut)).toBe('unavailable');
    await admin.query('RESET statement_timeout');
    const bad = await errorOf(() => admin.query('SELEC 1'));
    expect(failureCode(bad)).toBe('internal');
    await admin.end();
    await victim.end().catch(() => undefined);
  });
});
