#!/usr/bin/env node
/** The `flashattn` command: demo (npm start), doctor, bench, serve-demo (npm run demo:web). */
import { demo } from './cli/demo.js';
import { doctor } from './cli/doctor.js';

const usage = `usage: flashattn <command> [--backend auto|wasm|cuda] [--threads N]
  demo      the 10-query / 20-key causal picture, a check against the reference, a timed packed batch
  doctor    which engines load and why, then the conformance cases on each (--filter TEXT, --seed N)
  bench     the CPU benchmark against onnxruntime-web / onnxruntime-node (--threads 1,2 --only A,C --quick --json FILE)
  serve-demo the browser demo page on http://127.0.0.1:8787/, cross-origin isolated (--port N, --isolated false)`;

async function main(argv: string[]): Promise<number> {
  const [cmd = 'demo', ...rest] = argv;
  const log = (s: string) => console.log(s);
  switch (cmd) {
    case 'demo': return demo(rest, log);
    case 'doctor': return doctor(rest, log);
    case 'bench': {
      const { runBench } = await import('./cli/bench.js');
      await runBench(rest, log);
      return 0;
    }
    case 'serve-demo': {
      const { serveDemo } = await import('./cli/serve.js');
      return serveDemo(rest, log);
    }
    case 'help': case '--help': case '-h': log(usage); return 0;
    default: console.error(`flashattn: unknown command '${cmd}'\n${usage}`); return 2;
  }
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (e: unknown) => {
  console.error(`flashattn: ${(e as Error)?.stack ?? e}`);
  process.exitCode = 1;
});
