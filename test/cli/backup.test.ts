/**
 * `sequent-server backup` copies the embedded store while the server serves under load;
 * a server started on the copy has every message acked before the backup began,
 * at its acked seq, in a gapless log.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, expect, it } from 'vitest';
import { BIN, spawnServer } from '../support/cli-server.js';
import { connectAs } from '../support/hostile.js';
import type { Reply } from '../support/wire.js';

const run = promisify(execFile);
const root = mkdtempSync(join(tmpdir(), 'sequent-backup-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

it('backs up under load; a server on the restored copy has every message acked before the backup', async () => {
  const data = join(root, 'live');
  const server = await spawnServer(data);
  const writer = await connectAs(server, 'writer');
  const acks: Reply[] = [];
  let stop = false;
  let dseq = 0;
  const load = (async () => {
    while (!stop && dseq < 200_000) {
      const frames = Array.from({ length: 50 }, () => ({ t: 'send', conv: 'dm:reader:writer', cmid: `w-${++dseq}`, dseq, body: { n: dseq, pad: 'p'.repeat(200) } }));
      const replies = await Promise.all(frames.map((f) => writer.request(f)));
      for (const reply of replies) expect(reply.t).toBe('ack');
      acks.push(...replies);
    }
  })();
  while (acks.length < 2000) await new Promise((resolve) => setTimeout(resolve, 20));
  const ackedBefore = [...acks];
  const file = join(root, 'copy.db');
  const { stdout } = await run(process.execPath, [BIN, 'backup', '--data', data, '--to', file]);
  expect(stdout).toMatch(/pages/);
  const ackedDuring = acks.length - ackedBefore.length;
  stop = true;
  await load;
  server.child.kill('SIGTERM');
  await server.exited;
  // The load really ran while the backup did.
  expect(ackedDuring).toBeGreaterThan(0);

  const restored = join(root, 'restored');
  mkdirSync(restored);
  copyFileSync(file, join(restored, 'sequent.db'));
  const again = await spawnServer(restored);
  const reader = await connectAs(again, 'reader');
  const { msgs } = await reader.syncAll('dm:reader:writer');
  expect(msgs.map((m) => m.seq)).toEqual(msgs.map((_, i) => i + 1));
  const bySeq = new Map(msgs.map((m) => [m.seq, m]));
  for (const ack of ackedBefore) expect(bySeq.get(ack['seq'] as number), `seq ${ack['seq']}`).toMatchObject({ cmid: ack['cmid'], mid: ack['mid'] });
  // The restored server goes on from the copy's last seq.
  const next = await connectAs(again, 'writer', 'after');
  expect(await next.request({ t: 'send', conv: 'dm:reader:writer', cmid: 'after-restore', dseq: 1, body: 1 })).toMatchObject({ t: 'ack', seq: msgs.length + 1 });
  again.child.kill('SIGTERM');
  await again.exited;
}, 120_000);

it('refuses to overwrite a file, and names a missing database', async () => {
  const taken = join(root, 'taken.db');
  writeFileSync(taken, 'mine');
  const data = join(root, 'live');
  await expect(run(process.execPath, [BIN, 'backup', '--data', data, '--to', taken])).rejects.toMatchObject({ code: 1, stderr: expect.stringMatching(/exists already/) });
  expect(readFileSync(taken, 'utf8')).toBe('mine');
  await expect(run(process.execPath, [BIN, 'backup', '--data', join(root, 'nowhere'), '--to', join(root, 'x.db')])).rejects.toMatchObject({
    code: 1,
    stderr: expect.stringMatching(/no database at .*nowhere/),
  });
  expect(existsSync(join(root, 'x.db'))).toBe(false);
  await expect(run(process.execPath, [BIN, 'backup', '--data', data])).rejects.toMatchObject({ code: 2, stderr: expect.stringMatching(/--to is required/) });
});
