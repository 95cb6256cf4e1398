/**
 * `flashattn serve-demo`: serves the browser demo and the built package on localhost, with the
 * COOP/COEP headers that make the page cross-origin isolated (SharedArrayBuffer, so wasm threads).
 * Also used by the browser tests.
 */
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type CommandSpec, type Values, flag } from './args.js';

/** The package root: dist/cli/serve.js -> ../.. */
export const packageRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

/** Only these folders of the package are served. */
const ROOTS = ['web', 'dist', 'build/wasm'];

export interface DemoServer {
  server: Server;
  url: string;
  close(): Promise<void>;
}

/** Starts the server; `isolated: false` leaves out COOP/COEP (the page then runs on one thread). */
export function startServer(port = 0, isolated = true, host = '127.0.0.1'): Promise<DemoServer> {
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const rel = normalize(path === '/' ? '/web/index.html' : path).replace(/^[/\\]+/, '');
    const file = join(packageRoot, rel);
    const allowed = ROOTS.some((r) => file.startsWith(join(packageRoot, r) + sep));
    if (!allowed || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: ${path}`);
      return;
    }
    const headers: Record<string, string> = {
      'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
      'cache-control': 'no-store',
    };
    if (isolated) {
      headers['cross-origin-opener-policy'] = 'same-origin';
      headers['cross-origin-embedder-policy'] = 'require-corp';
      headers['cross-origin-resource-policy'] = 'same-origin';
    }
    res.writeHead(200, headers);
    createReadStream(file).pipe(res);
  });
  return new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(port, host, () => {
      const a = server.address();
      const url = `http://${host}:${typeof a === 'object' && a ? a.port : port}/`;
      ok({ server, url, close: () => new Promise<void>((done) => server.close(() => done())) });
    });
  });
}

const flags = {
  port: flag.int('N', 'the port on 127.0.0.1 (default 8787; 0 picks a free one)', 0, 65535),
  isolated: flag.choice(
    ['true', 'false'] as const,
    'send COOP/COEP, so the page is cross-origin isolated and wasm threads run (default true)',
  ),
};

export const serveDemoCommand: CommandSpec<typeof flags> = {
  name: 'serve-demo',
  summary:
    'serves the browser demo page on http://127.0.0.1:8787/, cross-origin isolated (npm run demo:web); Ctrl-C stops',
  flags,
};

export async function serveDemo(o: Values<typeof flags>, log: (s: string) => void): Promise<number> {
  const isolated = o.isolated !== 'false';
  const s = await startServer(o.port ?? 8787, isolated);
  log(
    `flashattn demo page: ${s.url}  (${
      isolated
        ? 'cross-origin isolated, so wasm threads are available'
        : 'not cross-origin isolated: one worker computes'
    }; Ctrl-C stops)`,
  );
  await new Promise<void>(() => {});
  return 0;
}
