/**
 * `npm start` under a process manager: the manager signals npm, and the server
 * itself must drain and exit — not keep listening as an orphan after npm is gone.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { TEST_SECRET } from '../support/cli-server.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const dataDir = mkdtempSync(join(tmpdir(), 'sequent-npm-start-'));
let orphan: number | undefined;
afterAll(() => {
  if (orphan !== undefined && alive(orphan)) process.kill(orphan, 'SIGKILL');
  rmSync(dataDir, { recursive: true, force: true });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

it.each([
  ['the npm process', false],
  // What systemd (KillMode=control-group) and a terminal's Ctrl-C do: the server gets the signal twice.
  ['its whole process group', true],
])('SIGTERM to %s drains the server, closes the port and leaves no process behind', { timeout: 40_000 }, async (_to, group) => {
  // npm_execpath is npm's own script when the tests run under npm; else the npm on PATH.
  const npmCli = process.env['npm_execpath'];
  const [command, args] = npmCli?.endsWith('.js') ? [process.execPath, [npmCli]] : ['npm', []];
  const npm = spawn(command, [...args, 'start', '--silent', '--', '--port', '0', '--data', dataDir], {
    cwd: ROOT,
    env: { ...process.env, SEQUENT_SECRET: TEST_SECRET },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: group,
  });
  // 'close', not 'exit': the server's last log lines may still be in the pipe when npm exits.
  const npmExited = new Promise<void>((resolve) => npm.once('close', () => resolve()));
  const lines: string[] = [];
  const listening = await new Promise<{ pid: number; port: number }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no listening line: ${lines.join('\n')}`)), 20_000);
    createInterface({ input: npm.stdout! }).on('line', (line) => {
      lines.push(line);
      if (!line.includes('"msg":"listening"')) return;
      clearTimeout(timer);
      resolve(JSON.parse(line) as { pid: number; port: number });
    });
  });
  orphan = listening.pid;
  expect(listening.pid).not.toBe(npm.pid);
  expect(await portOpen(listening.port)).toBe(true);

  if (group) process.kill(-npm.pid!, 'SIGTERM');
  else npm.kill('SIGTERM');
  await npmExited;

  expect(alive(listening.pid), 'the server outlived npm').toBe(false);
  expect(await portOpen(listening.port)).toBe(false);
  expect(lines.some((line) => line.includes('"msg":"stopped"')), lines.join('\n')).toBe(true);
});
