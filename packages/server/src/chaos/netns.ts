/**
 * A network namespace per cluster node, made by the run and deleted after it,
 * with an nftables table inside that can drop the node's PostgreSQL packets.
 * The node runs inside it (`ip netns exec`), so the drop hits the node's own
 * sockets: packets vanish, connections stay half open, and only the node's
 * keepalives and timeouts can tell — the failure the design names. Nothing of
 * the host's network is touched: the namespace has only its loopback, and
 * traffic leaves it through Unix sockets (ns-relay.ts), which are files.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

const run = promisify(execFile);
const TABLE = 'sequent_chaos';

export interface NetnsSupport {
  ok: boolean;
  /** why not, when not */
  why?: string;
}

/** Whether this process may make a namespace and use nftables inside it: tried once with a probe namespace. */
export async function netnsSupport(): Promise<NetnsSupport> {
  const name = `sqprobe-${process.pid}-${randomBytes(3).toString('hex')}`;
  try {
    await run('ip', ['netns', 'add', name], { timeout: 5000 });
  } catch (error) {
    return { ok: false, why: `ip netns add failed: ${firstLine(error)}` };
  }
  try {
    await run('ip', ['netns', 'exec', name, 'nft', 'add', 'table', 'inet', TABLE], { timeout: 5000 });
    return { ok: true };
  } catch (error) {
    return { ok: false, why: `nft inside a namespace failed: ${firstLine(error)}` };
  } finally {
    await run('ip', ['netns', 'del', name], { timeout: 5000 }).catch(() => {});
  }
}

function firstLine(error: unknown): string {
  const e = error as { stderr?: string; message?: string };
  return (e.stderr || e.message || String(error)).split('\n')[0]!.trim();
}

/**
 * Deletes the namespaces of runs that died without cleaning up (killed, Ctrl-C):
 * their names carry the run's pid, and a namespace whose run is gone is nobody's.
 * Returns the names deleted.
 */
export async function sweepStaleNetns(): Promise<string[]> {
  let listed = '';
  try {
    listed = (await run('ip', ['netns', 'list'], { timeout: 5000 })).stdout;
  } catch {
    return [];
  }
  const gone: string[] = [];
  for (const line of listed.split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const pid = /^sq(?:chaos-[a-z0-9]+|probe)-(\d+)-[0-9a-f]+$/.exec(name)?.[1];
    if (pid === undefined || Number(pid) === process.pid || isAlive(Number(pid))) continue;
    await run('ip', ['netns', 'del', name], { timeout: 5000 }).then(() => gone.push(name), () => {});
  }
  return gone;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface Netns {
  readonly name: string;
  /** The command prefix that runs a program inside it. */
  readonly exec: string[];
  /** Drops (both directions, no reset) every TCP packet to or from these ports on the namespace's loopback. */
  drop(ports: number[]): Promise<void>;
  /** Lets every packet through again. */
  undrop(): Promise<void>;
  readonly dropping: boolean;
  delete(): Promise<void>;
}

export async function createNetns(label: string): Promise<Netns> {
  const name = `sqchaos-${label}-${process.pid}-${randomBytes(3).toString('hex')}`;
  await run('ip', ['netns', 'add', name], { timeout: 5000 });
  const nft = (...args: string[]) => run('ip', ['netns', 'exec', name, 'nft', ...args], { timeout: 5000 });
  try {
    await run('ip', ['netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up'], { timeout: 5000 });
    await nft('add', 'table', 'inet', TABLE);
    // Loopback packets cross the output hook once, in each direction: one chain catches both.
    await nft('add', 'chain', 'inet', TABLE, 'out', '{ type filter hook output priority 0; policy accept; }');
  } catch (error) {
    await run('ip', ['netns', 'del', name]).catch(() => {});
    throw error;
  }
  let dropping = false;
  return {
    name,
    exec: ['ip', 'netns', 'exec', name],
    async drop(ports) {
      for (const port of ports) {
        await nft('add', 'rule', 'inet', TABLE, 'out', 'tcp', 'dport', String(port), 'drop');
        await nft('add', 'rule', 'inet', TABLE, 'out', 'tcp', 'sport', String(port), 'drop');
      }
      dropping = true;
    },
    async undrop() {
      await nft('flush', 'chain', 'inet', TABLE, 'out');
      dropping = false;
    },
    get dropping() {
      return dropping;
    },
    async delete() {
      await run('ip', ['netns', 'del', name], { timeout: 5000 });
    },
  };
}
