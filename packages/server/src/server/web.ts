/**
 * The web chat on the public port: the files `npm run build` bundles from
 * packages/web into this package's web/ folder, served at `/`, and (only when
 * asked for, for local use) a demo sign-in that mints a token for any name.
 * It sits in front of the gateway's own HTTP handler and passes on what is not
 * its own (/healthz, 404s), so the gateway needs no knowledge of it.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { isName } from 'sequent-client/protocol';
import type { TokenAuthority } from './auth.js';

/** POST {user, device} here for a token, when the demo sign-in is on. */
export const DEMO_TOKEN_PATH = '/demo/token';
/** The page asks this whether the demo sign-in is on, so that it knows which sign-in to show. */
export const WEB_CONFIG_PATH = '/web-config.json';
/** Demo tokens live a day, like the `token` command's. */
const DEMO_TOKEN_TTL_SECONDS = 24 * 3600;
const MAX_DEMO_BODY = 1024;

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

/** Same-origin everything; the WebSocket may be on another host when the app's backend says so. */
const HEADERS = {
  'content-security-policy': "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

interface WebFile {
  body: Buffer;
  type: string;
}

/** The folder of the built page: <package root>/web, whether this runs from src/ or dist/src/. */
export function defaultWebDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'bin'))) return join(dir, 'web');
    const parent = dirname(dir);
    if (parent === dir) return join(dirname(fileURLToPath(import.meta.url)), 'web');
    dir = parent;
  }
}

/** Every file of the built page, read once at start: the set is small, and no request path ever reaches the file system. */
function loadFiles(dir: string): Map<string, WebFile> {
  const files = new Map<string, WebFile>();
  const walk = (folder: string, prefix: string): void => {
    for (const name of readdirSync(folder)) {
      const path = join(folder, name);
      if (statSync(path).isDirectory()) walk(path, `${prefix}${name}/`);
      else files.set(`${prefix}${name}`, { body: readFileSync(path), type: TYPES[extname(name)] ?? 'application/octet-stream' });
    }
  };
  if (existsSync(join(dir, 'index.html'))) walk(dir, '/');
  return files;
}

export interface WebOptions {
  dir?: string;
  /** Given: the demo sign-in is on and mints with this. */
  demo: TokenAuthority | undefined;
  logger: Logger;
}

export interface MountedWeb {
  /** False when the page was never built (the server still runs; `/` is a 404 saying so). */
  readonly built: boolean;
}

/** Puts the web handler in front of the server's request listeners. */
export function mountWeb(http: HttpServer, options: WebOptions): MountedWeb {
  const dir = options.dir ?? defaultWebDir();
  const files = loadFiles(dir);
  const built = files.has('/index.html');
  if (!built) options.logger.warn({ dir }, 'the web app is not built (npm run build): / serves nothing');
  const config = Buffer.from(JSON.stringify({ demo: options.demo !== undefined }));
  const next = http.listeners('request') as ((req: IncomingMessage, res: ServerResponse) => void)[];
  http.removeAllListeners('request');
  http.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split(/[?#]/)[0] ?? '/';
    if (path === DEMO_TOKEN_PATH && options.demo) {
      void demoToken(req, res, options.demo, options.logger);
      return;
    }
    const file = req.method === 'GET' || req.method === 'HEAD' ? pick(files, config, path) : undefined;
    if (!file) {
      for (const listener of next) listener(req, res);
      return;
    }
    res.writeHead(200, { ...HEADERS, 'content-type': file.type, 'content-length': file.body.length });
    res.end(req.method === 'HEAD' ? undefined : file.body);
  });
  return { built };
}

function pick(files: Map<string, WebFile>, config: Buffer, path: string): WebFile | undefined {
  if (path === WEB_CONFIG_PATH) return { body: config, type: TYPES['.json']! };
  return files.get(path === '/' ? '/index.html' : path);
}

function reply(res: ServerResponse, status: number, body: Record<string, unknown>): void {
  res.writeHead(status, { ...HEADERS, 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

async function demoToken(req: IncomingMessage, res: ServerResponse, tokens: TokenAuthority, logger: Logger): Promise<void> {
  if (req.method !== 'POST') return reply(res, 405, { error: 'bad_request', message: 'POST {"user", "device"}' });
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_DEMO_BODY) return reply(res, 413, { error: 'too_large', message: `at most ${MAX_DEMO_BODY} bytes` });
    chunks.push(chunk);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    return reply(res, 400, { error: 'bad_request', message: 'the body is not JSON' });
  }
  const { user, device } = (typeof parsed === 'object' && parsed !== null ? parsed : {}) as { user?: unknown; device?: unknown };
  if (!isName(user) || !isName(device)) {
    return reply(res, 400, { error: 'bad_request', message: 'user and device must be 1-64 characters of [A-Za-z0-9_.-]' });
  }
  logger.info({ user, device }, 'demo token minted');
  reply(res, 200, { token: await tokens.mint(user, device, DEMO_TOKEN_TTL_SECONDS) });
}
