/**
 * Hostile frames against a real `sequent-server serve` process: each is answered as
 * docs/errors.md says, never crashes the process, and a bystander keeps being
 * served. One test per finding of the hardening review (rows of issue 10).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignJWT } from 'jose';
import { WireClient } from '../support/wire.js';
import { TEST_SECRET } from '../support/cli-server.js';
import { closedWithin, connectAs, expectBystanderServed, startHostileServer, type HostileServer } from '../support/hostile.js';

const deep = (depth: number, leaf: unknown = 0): string => '['.repeat(depth) + JSON.stringify(leaf) + ']'.repeat(depth);

let server: HostileServer;
beforeAll(async () => {
  server = await startHostileServer(['--max-connections-per-user', '5', '--max-connections-per-address', '100']);
});
afterAll(async () => {
  await server.stop();
});

describe('frames no client can crash the server with', () => {
  it('a send whose body nests 5,000 deep, as the first frame: closed 4401, the process keeps serving', async () => {
    const attacker = await WireClient.open(server.url);
    attacker.sendRaw(`{"t":"send","id":1,"conv":"dm:a:b","cmid":"x","dseq":1,"body":${deep(5000)}}`);
    expect(await closedWithin(attacker, 5000)).toBe(4401);
    await expectBystanderServed(server);
  });

  it('after hello, a body or ctx nested too deep is bad_request with the id, and nothing is stored', async () => {
    const attacker = await connectAs(server, 'mallory');
    attacker.sendRaw(`{"t":"send","id":76,"conv":"dm:mallory:zed","cmid":"b","dseq":1,"body":${deep(5000)}}`);
    await expect.poll(() => attacker.unsolicited.find((f) => f['id'] === 76)).toMatchObject({ t: 'error', code: 'bad_request' });
    const body = attacker.unsolicited.find((f) => f['id'] === 76)!;
    expect(String(body['message'])).toMatch(/body: nests deeper than 32/);
    const ctxText = `{"t":"send","id":77,"conv":"dm:mallory:zed","cmid":"c","dseq":1,"body":1,"ctx":{"seen":1,"x":${deep(100_000)}}}`;
    attacker.sendRaw(ctxText);
    await expect.poll(() => attacker.unsolicited.find((f) => f['id'] === 77)).toMatchObject({ t: 'error', code: 'bad_request' });
    // 32 levels are fine, 33 are not.
    expect(await attacker.request({ t: 'send', conv: 'dm:mallory:zed', cmid: 'ok', dseq: 1, body: JSON.parse(deep(32)) })).toMatchObject({ t: 'ack', seq: 1 });
    expect(await attacker.request({ t: 'send', conv: 'dm:mallory:zed', cmid: 'no', dseq: 2, body: JSON.parse(deep(33)) })).toMatchObject({ code: 'bad_request' });
    expect((await attacker.syncAll('dm:mallory:zed')).msgs.map((m) => m.cmid)).toEqual(['ok']);
    await expectBystanderServed(server);
  });

  it('a frame type that is a deep array is bad_request, not a crash', async () => {
    const attacker = await connectAs(server, 'mallory', 'types');
    attacker.sendRaw(`{"t":${deep(10_000)},"id":5}`);
    await expect.poll(() => attacker.unsolicited.find((f) => f['id'] === 5)).toMatchObject({ t: 'error', code: 'bad_request' });
    await expectBystanderServed(server);
  });

  it('ctx counts toward maxBody, and a ctx over 1 KiB is too_large', async () => {
    const attacker = await connectAs(server, 'mallory', 'ctx');
    const junk = await attacker.request({ t: 'send', conv: 'dm:mallory:yan', cmid: 'j', dseq: 1, body: 'hi', ctx: { seen: 1, junk: 'x'.repeat(200_000) } });
    expect(junk).toMatchObject({ t: 'error', code: 'too_large' });
    const tooMuch = await attacker.request({ t: 'send', conv: 'dm:mallory:yan', cmid: 'k', dseq: 1, body: 'x'.repeat(65_536 - 2 - 100), ctx: { seen: 1, pad: 'y'.repeat(200) } });
    expect(tooMuch).toMatchObject({ t: 'error', code: 'too_large' });
    expect(String(tooMuch['message'])).toMatch(/body and ctx/);
    const fits = await attacker.request({ t: 'send', conv: 'dm:mallory:yan', cmid: 'l', dseq: 1, body: 'hi', ctx: { seen: 0, note: 'small' } });
    expect(fits).toMatchObject({ t: 'ack', seq: 1 });
    await expectBystanderServed(server);
  });

  it('60,000 hellos after login: refused, counted as bad frames, the connection closed with 4400 long before the end', async () => {
    const attacker = await connectAs(server, 'mallory', 'hellos');
    const hello = JSON.stringify({ t: 'hello', id: 9, proto: 1, token: 'x' });
    for (let i = 0; i < 60_000 && attacker.socket.readyState === attacker.socket.OPEN; i++) attacker.sendRaw(hello);
    expect(await closedWithin(attacker, 10_000)).toBe(4400);
    const answers = attacker.unsolicited.filter((f) => f.t === 'error');
    expect(answers.length).toBeGreaterThan(0);
    expect(answers.length).toBeLessThanOrEqual(20);
    expect(answers.every((f) => f['code'] === 'bad_request')).toBe(true);
    await expectBystanderServed(server);
  });

  it('a flood of valid frames past the rate limit gets rate_limited, then the connection is closed with 4400', async () => {
    const attacker = await connectAs(server, 'mallory', 'flood');
    // Sent in one go, far faster than 5,000 a second refill the burst of 10,000.
    for (let i = 0; i < 40_000 && attacker.socket.readyState === attacker.socket.OPEN; i++) attacker.sendRaw(`{"t":"ping","id":${i + 100}}`);
    expect(await closedWithin(attacker, 10_000)).toBe(4400);
    const limited = attacker.unsolicited.filter((f) => f.t === 'error' && f['code'] === 'rate_limited');
    expect(limited.length).toBeGreaterThan(0);
    // The first burst is served: 10,000 pongs (the burst), the rest refused.
    expect(attacker.unsolicited.filter((f) => f.t === 'pong').length).toBeGreaterThanOrEqual(9_000);
    await expectBystanderServed(server);
  });

  it('a frame over 4 × maxFrame gets too_large before the close', async () => {
    const attacker = await connectAs(server, 'mallory', 'huge');
    attacker.sendRaw(`{"t":"send","id":3,"conv":"dm:mallory:zed","cmid":"h","dseq":1,"body":"${'x'.repeat(1_200_000)}"}`);
    expect(await closedWithin(attacker, 5000)).toBe(1009);
    expect(attacker.unsolicited).toContainEqual(expect.objectContaining({ t: 'error', code: 'too_large' }));
    // Just over maxFrame (but under the hard cap): too_large with the id, and the connection stays open.
    const second = await connectAs(server, 'mallory', 'big');
    const reply = await second.request({ t: 'send', conv: 'dm:mallory:zed', cmid: 'h', dseq: 1, body: 'x'.repeat(300_000) });
    expect(reply).toMatchObject({ t: 'error', code: 'too_large' });
    expect(await second.request({ t: 'ping' })).toMatchObject({ t: 'pong' });
    await expectBystanderServed(server);
  });

  it.each([
    ['a token over 8 kB', 'unauthorized', { token: 'x'.repeat(9000) }],
    ['an empty token', 'unauthorized', { token: '' }],
    ['no token', 'unauthorized', { token: undefined }],
    ['proto as a string', 'bad_request', { proto: '1' }],
  ])('a hello with %s is answered %s, then closed with 4401', async (_, code, fields) => {
    const client = await WireClient.open(server.url);
    client.sendRaw(JSON.stringify({ t: 'hello', id: 1, proto: 1, token: 'x', ...fields }));
    expect(await closedWithin(client, 5000)).toBe(4401);
    expect(client.unsolicited).toEqual([expect.objectContaining({ t: 'error', id: 1, code })]);
    await expectBystanderServed(server);
  });

  it('a token that expires while connected ends the connection with 4401', async () => {
    const started = Date.now();
    const client = await connectAs(server, 'shortlived', 'd1', 2);
    expect(await client.request({ t: 'ping' })).toMatchObject({ t: 'pong' });
    expect(await closedWithin(client, 6000)).toBe(4401);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    // An expired token is refused at hello.
    const late = await WireClient.open(server.url);
    const expired = await new SignJWT({ dev: 'd1' }).setProtectedHeader({ alg: 'HS256' }).setSubject('shortlived').setExpirationTime(Math.floor(Date.now() / 1000) - 5).sign(new TextEncoder().encode(TEST_SECRET));
    expect(await late.hello(expired)).toMatchObject({ t: 'error', code: 'unauthorized' });
    expect(await closedWithin(late, 3000)).toBe(4401);
  });
});

describe('connection caps', () => {
  it('a user past its cap is closed with 4430; its other connections stay', async () => {
    const open: WireClient[] = [];
    for (let i = 0; i < 5; i++) open.push(await connectAs(server, 'many', `d${i}`));
    const sixth = await WireClient.open(server.url);
    sixth.sendRaw(JSON.stringify({ t: 'hello', id: 1, proto: 1, token: await (await import('../support/hostile.js')).tokens.mint('many', 'd6') }));
    expect(await closedWithin(sixth, 5000)).toBe(4430);
    for (const client of open) expect(await client.request({ t: 'ping' })).toMatchObject({ t: 'pong' });
    open[0]!.close();
    await open[0]!.closed;
    // Room again once one closed.
    const again = await connectAs(server, 'many', 'd7');
    expect(await again.request({ t: 'ping' })).toMatchObject({ t: 'pong' });
    for (const client of [...open, again]) client.close();
  });

  it('10,000 connection attempts from one address: past the cap each is closed with 4430, while /healthz and a connected client stay responsive', async () => {
    const steady = await connectAs(server, 'steady');
    const codes = new Map<number | string, number>();
    let healthy = 0;
    const probe = setInterval(() => {
      void fetch(`${server.httpUrl}/healthz`).then((r) => {
        if (r.ok) healthy++;
      });
    }, 200);
    const opened: WireClient[] = [];
    try {
      for (let wave = 0; wave < 20; wave++) {
        const attempts = Array.from({ length: 500 }, async () => {
          try {
            const client = await WireClient.open(server.url);
            opened.push(client);
            const code = await closedWithin(client, 5000);
            codes.set(code, (codes.get(code) ?? 0) + 1);
          } catch {
            codes.set('refused', (codes.get('refused') ?? 0) + 1);
          }
        });
        await Promise.all(attempts);
        expect(await steady.request({ t: 'ping' }, 5000)).toMatchObject({ t: 'pong' });
      }
    } finally {
      clearInterval(probe);
    }
    // The address cap is 100, and the test's own steady client counts too.
    const stillOpen = opened.filter((c) => c.socket.readyState === c.socket.OPEN);
    expect(stillOpen.length).toBeLessThanOrEqual(99);
    expect(codes.get(4430) ?? 0).toBeGreaterThan(9_000);
    expect(healthy).toBeGreaterThan(0);
    // Their closes must land before the bystander asks: it comes from the same address.
    await Promise.all(stillOpen.map((client) => (client.close(), client.closed)));
    await expectBystanderServed(server);
    steady.close();
  }, 240_000);
});
