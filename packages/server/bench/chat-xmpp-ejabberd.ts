/**
 * An ejabberd instance of its own for the chat benchmark: Debian's `ejabberd`
 * package, a config written into a temp dir (owned by the `ejabberd` user, as
 * `ejabberdctl` runs the node as that user), c2s on a free loopback port, MUC
 * rooms with MAM on mnesia, stream management (XEP-0198). The users and rooms
 * are made with `ejabberdctl`; `stop` stops the node and removes the dir.
 */
import { execFile } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const EJABBERDCTL = '/usr/sbin/ejabberdctl';
export const XMPP_DOMAIN = 'bench.localhost';
export const MUC_DOMAIN = `conference.${XMPP_DOMAIN}`;

export interface EjabberdInstance {
  port: number;
  /** As `ejabberdctl status` tells it, e.g. 23.01-1. */
  version: string;
  /** The node's beam.smp, for its CPU. */
  pid: number;
  dir: string;
  stop(): Promise<void>;
}

/** Why ejabberd cannot run here, or undefined when it can. */
export function ejabberdMissing(): string | undefined {
  if (!existsSync(EJABBERDCTL)) return `ejabberd is not installed (${EJABBERDCTL} not found; apt-get install ejabberd)`;
  const user = readFileSync('/etc/passwd', 'utf8').split('\n').find((line) => line.startsWith('ejabberd:'));
  if (!user) return 'no ejabberd user in /etc/passwd';
  if (process.getuid?.() !== 0 && process.getuid?.() !== Number(user.split(':')[2])) return 'ejabberdctl must run as root or as the ejabberd user';
  return undefined;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

function config(port: number, mam: boolean): string {
  // No TLS on loopback, no shaper (the default `normal` one would cap each client at 1,000 B/s),
  // MAM on for every room (unless `mam` is false), the archive in mnesia (mod_mam_mnesia: a
  // disc_only_copies table, that is a dets file).
  return `hosts:
  - ${XMPP_DOMAIN}
loglevel: warning
certfiles: []
listen:
  -
    port: ${port}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    shaper: none
    access: all
    backlog: 1024
    max_stanza_size: 262144
    starttls: false
    starttls_required: false
auth_method: internal
auth_password_format: plain
default_db: mnesia
acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
shaper_rules:
  max_user_sessions: 10
modules:
  mod_disco: {}
  mod_muc:
    host: "${MUC_DOMAIN}"
    access: all
    access_create: local
    access_persistent: local
    access_mam: all
    max_users: 100000
    history_size: 0
    default_room_options:
      mam: ${mam}
      persistent: true
  mod_muc_admin: {}
  mod_mam:
    db_type: mnesia
    default: never
  mod_stream_mgmt: {}
`;
}

function run(file: string, args: string[], cwd: string, timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { cwd, timeout: timeoutMs }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${args.slice(-4).join(' ')}: ${error.message} ${stdout}${stderr}`.trim().slice(0, 500)));
      else resolve(stdout);
    });
  });
}

function chownTree(path: string, uid: number, gid: number): void {
  chownSync(path, uid, gid);
  for (const entry of readdirSync(path, { withFileTypes: true })) {
    const child = join(path, entry.name);
    if (entry.isDirectory()) chownTree(child, uid, gid);
    else chownSync(child, uid, gid);
  }
}

/** The beam.smp of the node named `node`, found by its command line. */
function beamPid(node: string): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === 'beam.smp' && cmdline.includes(node)) return Number(entry);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

export interface EjabberdSetup {
  users: readonly string[];
  rooms: readonly string[];
  /** Rooms archive their messages (MAM). */
  mam: boolean;
}

let started = 0;

export async function startEjabberd(setup: EjabberdSetup, log: (line: string) => void): Promise<EjabberdInstance> {
  const missing = ejabberdMissing();
  if (missing) throw new Error(missing);
  const [uid, gid] = readFileSync('/etc/passwd', 'utf8').split('\n').find((line) => line.startsWith('ejabberd:'))!.split(':').slice(2, 4).map(Number) as [number, number];
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'sequent-bench-ejabberd-'));
  const node = `seqbench${process.pid}x${Date.now() % 100_000}n${++started}@localhost`;
  mkdirSync(join(dir, 'db'));
  mkdirSync(join(dir, 'log'));
  writeFileSync(join(dir, 'ejabberd.yml'), config(port, setup.mam));
  // The Erlang distribution listens on loopback only; epmd is the machine's (RabbitMQ runs one).
  writeFileSync(join(dir, 'ejabberdctl.cfg'), `INET_DIST_INTERFACE=127.0.0.1\nERLANG_NODE=${node}\n`);
  writeFileSync(join(dir, 'inetrc'), '');
  chownTree(dir, uid, gid);
  const ctl = (...args: string[]) =>
    run(EJABBERDCTL, ['--config-dir', dir, '--config', join(dir, 'ejabberd.yml'), '--spool', join(dir, 'db'), '--logs', join(dir, 'log'), '--node', node, ...args], dir);
  let pid: number | undefined;
  const stop = async () => {
    try {
      await ctl('stop');
      await ctl('stopped');
    } catch (error) {
      log(`ejabberd: stop failed (${String(error)}); killing beam ${pid ?? '?'}`);
      if (pid !== undefined) process.kill(pid, 'SIGKILL');
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await ctl('start');
    await ctl('started');
    const status = await ctl('status');
    if (!status.includes('is running')) throw new Error(`ejabberd did not start: ${status}`);
    pid = beamPid(node);
    if (pid === undefined) throw new Error(`no beam.smp for node ${node}`);
    // ejabberdctl is an Erlang node of its own per call (~0.3 s): a few at once.
    const queue = [...setup.users];
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (let user = queue.shift(); user !== undefined; user = queue.shift()) await ctl('register', user, XMPP_DOMAIN, passwordOf(user));
      }),
    );
    for (const room of setup.rooms) await ctl('create_room', room, MUC_DOMAIN, XMPP_DOMAIN);
    log(`ejabberd: node ${node} (beam pid ${pid}) on 127.0.0.1:${port}, ${setup.users.length} users, ${setup.rooms.length} rooms${setup.mam ? ' with MAM' : ' without MAM'}, dir ${dir}`);
    return { port, pid, dir, stop, version: /ejabberd (\S+) is running/.exec(status)?.[1] ?? '?' };
  } catch (error) {
    const tail = existsSync(join(dir, 'log', 'error.log')) ? readFileSync(join(dir, 'log', 'error.log'), 'utf8').slice(-400) : '';
    await stop();
    throw new Error(`${error instanceof Error ? error.message : String(error)}${tail ? `; error.log: ${tail}` : ''}`);
  }
}

export function passwordOf(user: string): string {
  return `pw-${user}`;
}
