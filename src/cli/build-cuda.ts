/**
 * `flashattn build-cuda`: builds the CUDA addon from the sources the package ships (cuda/, csrc/,
 * CMakeLists.txt) into build/Release/flashattn_cuda.node, for machines where no prebuilt addon
 * package (@flashattn/cuda-<platform>-<arch>) fits. It needs nvcc, cmake and two sets of headers:
 * Node-API's C headers (the node-api-headers package, or the include/node folder next to Node) and
 * node-addon-api's C++ wrapper (a devDependency here; fetched on demand into build/cuda-deps in an
 * installed package). `npm ci` in the repository runs it best effort: without nvcc it says so in
 * one line and the WebAssembly engine is used.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type CommandSpec, type Values, flag } from './args.js';

/** The package root: dist/cli/build-cuda.js -> ../.. */
const root = path.resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const ADDON_OUTPUT = path.join(root, 'build', 'Release', 'flashattn_cuda.node');

export interface BuildCudaOptions {
  /** Without nvcc or cmake, or when the build fails: one line and success (the wasm engine remains). */
  bestEffort?: boolean;
  /** Start from an empty CMake folder. */
  clean?: boolean;
  /** Print ptxas register and spill reports. */
  ptxasVerbose?: boolean;
  log?: (line: string) => void;
}

/** Why a build cannot be attempted here, with what to install. */
export class BuildCudaError extends Error {}

function onPath(name: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const p = path.join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* not here */
    }
  }
  return null;
}

/** nvcc: CUDACXX when set (then only there), else on PATH, else where CUDA installs it. */
export function findNvcc(): string | null {
  const env = process.env.CUDACXX;
  if (env) return existsSync(env) ? env : null;
  return onPath('nvcc') ?? (existsSync('/usr/local/cuda/bin/nvcc') ? '/usr/local/cuda/bin/nvcc' : null);
}

const req = createRequire(path.join(root, 'package.json'));
const packageDir = (name: string, from = req): string | null => {
  try {
    return path.dirname(from.resolve(`${name}/package.json`));
  } catch {
    return null;
  }
};

/** Node-API's C headers: the node-api-headers package, else the headers that ship with Node. */
function nodeApiInclude(): string | null {
  const pkg = packageDir('node-api-headers');
  if (pkg && existsSync(path.join(pkg, 'include', 'node_api.h'))) return path.join(pkg, 'include');
  const beside = path.resolve(path.dirname(process.execPath), '..', 'include', 'node');
  return existsSync(path.join(beside, 'node_api.h')) ? beside : null;
}

/** node-addon-api's headers: installed beside the package, else fetched once into build/cuda-deps. */
function addonApiInclude(log: (s: string) => void): string {
  const found = packageDir('node-addon-api');
  if (found) return found;
  const deps = path.join(root, 'build', 'cuda-deps');
  const local = packageDir('node-addon-api', createRequire(path.join(deps, 'package.json')));
  if (local) return local;
  const npm = onPath(process.platform === 'win32' ? 'npm.cmd' : 'npm');
  const how = 'install it next to flashattn (npm install --no-save node-addon-api@8) and run build-cuda again';
  if (!npm)
    throw new BuildCudaError(`the build needs node-addon-api's headers and npm is not on PATH to fetch them: ${how}`);
  log('flashattn: fetching node-addon-api (C++ headers for the addon) into build/cuda-deps');
  mkdirSync(deps, { recursive: true });
  const r = spawnSync(
    npm,
    [
      'install',
      '--prefix',
      deps,
      '--no-save',
      '--no-package-lock',
      '--ignore-scripts',
      '--no-audit',
      '--no-fund',
      'node-addon-api@^8',
    ],
    { stdio: 'inherit' },
  );
  const got = packageDir('node-addon-api', createRequire(path.join(deps, 'package.json')));
  if (r.status !== 0 || !got) throw new BuildCudaError(`fetching node-addon-api failed: ${how}`);
  return got;
}

/** Builds the addon; returns its path. Throws BuildCudaError (what is missing) or Error (the build failed). */
export function buildCuda(o: BuildCudaOptions = {}): string | null {
  const log = o.log ?? ((s: string) => console.log(s));
  const skip = (why: string): null => {
    if (!o.bestEffort) throw new BuildCudaError(why);
    log(`flashattn: CUDA addon not built (${why}); the WebAssembly engine is used instead`);
    return null;
  };
  const nvcc = findNvcc();
  if (!nvcc) {
    const env = process.env.CUDACXX;
    return skip(
      env
        ? `CUDACXX is ${env}, which does not exist`
        : 'no CUDA compiler found: nvcc on PATH, in CUDACXX or at /usr/local/cuda/bin/nvcc',
    );
  }
  const cmake = onPath('cmake');
  if (!cmake) return skip('cmake is not on PATH (the build needs CMake 3.18 or newer)');
  if (!existsSync(path.join(root, 'CMakeLists.txt'))) return skip(`the CUDA sources are missing from ${root}`);
  const nodeInc = nodeApiInclude();
  if (!nodeInc)
    return skip("Node-API's headers were not found (the node-api-headers package, or include/node next to node)");
  let addonInc: string;
  try {
    addonInc = addonApiInclude(log);
  } catch (e) {
    return skip((e as Error).message);
  }

  const work = path.join(root, 'build', 'cuda');
  if (o.clean) rmSync(work, { recursive: true, force: true });
  const ninja = onPath('ninja');
  const configure = [
    '-S',
    root,
    '-B',
    work,
    '-DCMAKE_BUILD_TYPE=Release',
    `-DCMAKE_CUDA_COMPILER=${nvcc}`,
    `-DFLASHATTN_NODE_API_INCLUDE=${nodeInc}`,
    `-DFLASHATTN_ADDON_API_INCLUDE=${addonInc}`,
    `-DFLASHATTN_PTXAS_VERBOSE=${o.ptxasVerbose ? 'ON' : 'OFF'}`,
  ];
  if (ninja && !existsSync(path.join(work, 'CMakeCache.txt'))) configure.push('-G', 'Ninja');
  const jobs = String(os.availableParallelism?.() ?? os.cpus().length);
  const started = Date.now();
  for (const args of [configure, ['--build', work, '--parallel', jobs]]) {
    const r = spawnSync(cmake, args, { cwd: root, stdio: 'inherit' });
    const failed = r.error
      ? r.error.message
      : r.status !== 0
        ? `cmake ${args[0]} exited with status ${r.status}`
        : null;
    if (failed) {
      if (o.bestEffort) {
        log(`flashattn: CUDA addon build failed (${failed}); the WebAssembly engine is used instead`);
        return null;
      }
      throw new Error(`the CUDA addon build failed: ${failed}`);
    }
  }
  if (!existsSync(ADDON_OUTPUT)) throw new Error(`the CUDA build finished but ${ADDON_OUTPUT} was not produced`);
  log(
    `flashattn: built ${path.relative(process.cwd(), ADDON_OUTPUT) || ADDON_OUTPUT} in ${((Date.now() - started) / 1000).toFixed(0)} s`,
  );
  return ADDON_OUTPUT;
}

const flags = {
  clean: flag.bool('start from an empty CMake folder (build/cuda)'),
  'ptxas-verbose': flag.bool("print ptxas's register and spill report of every kernel"),
};

export const buildCudaCommand: CommandSpec<typeof flags> = {
  name: 'build-cuda',
  summary: 'build the CUDA addon from the shipped sources (needs nvcc and cmake)',
  details: `Writes build/Release/flashattn_cuda.node inside the package, which the cuda engine then loads before
any prebuilt @flashattn/cuda-* package. Fetches node-addon-api's headers with npm when they are not installed.`,
  flags,
};

export function buildCudaCli(o: Values<typeof flags>, log: (s: string) => void): Promise<number> {
  buildCuda({ clean: o.clean, ptxasVerbose: o['ptxas-verbose'], log });
  return Promise.resolve(0);
}
