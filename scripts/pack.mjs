#!/usr/bin/env node
// Packs what users install (`npm run pack`, after `npm run build`; npm test runs it too):
//   build/pack/flashattn-<version>.tgz                 the library: `npm pack` of the repository (its
//                                                      `files`), its package.json cut to what a consumer
//                                                      needs (no scripts, no devDependencies) plus the
//                                                      platform package as an optional dependency
//   build/pack/flashattn-cuda-linux-x64-<version>.tgz  the prebuilt addon (stripped), where one was built
// The repository's package.json is private, so that only these tarballs are ever published.
// --json prints { library, cuda, sizes } for tests.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'build', 'pack');
const stage = join(out, 'stage');
const json = process.argv.includes('--json');
const log = (s) => {
  if (!json) console.log(s);
};
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const platform = `${process.platform}-${process.arch}`;
const cudaName = `@flashattn/cuda-${platform}`;
const addon = join(root, 'build', 'Release', 'flashattn_cuda.node');

for (const f of ['dist/index.js', 'dist/wasm/worker-source.js', 'build/wasm/flashattn.wasm'])
  if (!existsSync(join(root, f))) throw new Error(`pack: ${f} is missing; run npm run build first`);

rmSync(out, { recursive: true, force: true });
mkdirSync(stage, { recursive: true });
const npmPack = (dir) => {
  const [r] = JSON.parse(
    execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', out], {
      cwd: dir,
      encoding: 'utf8',
    }),
  );
  return join(out, r.filename);
};

// The library: the repository's own `npm pack`, unpacked, its package.json rewritten, packed again.
const raw = npmPack(root);
execFileSync('tar', ['-xzf', raw, '-C', stage]);
rmSync(raw);
const lib = join(stage, 'package');
const manifest = { ...pkg };
for (const k of ['private', 'scripts', 'devDependencies', 'allowScripts']) delete manifest[k];
manifest.optionalDependencies = { [cudaName]: pkg.version };
writeFileSync(join(lib, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
const library = npmPack(lib);
log(`pack: ${library} (${(statSync(library).size / 1024).toFixed(0)} KiB)`);

// The platform package, from this machine's build of the addon.
let cuda = null;
if (existsSync(addon)) {
  const dir = join(stage, 'cuda');
  mkdirSync(dir);
  const src = join(root, 'packages', `cuda-${platform}`);
  for (const f of ['README.md']) copyFileSync(join(src, f), join(dir, f));
  copyFileSync(join(root, 'LICENSE'), join(dir, 'LICENSE'));
  try {
    execFileSync('strip', ['--strip-unneeded', '-o', join(dir, 'flashattn_cuda.node'), addon]);
  } catch {
    copyFileSync(addon, join(dir, 'flashattn_cuda.node'));
  }
  const [os, cpu] = platform.split('-');
  const cudaManifest = {
    name: cudaName,
    version: pkg.version,
    description: `The prebuilt CUDA addon of flashattn for ${platform} (sm_80, sm_90a, PTX; CUDA runtime linked statically)`,
    license: pkg.license,
    repository: pkg.repository,
    os: [os],
    cpu: [cpu],
    ...(os === 'linux' ? { libc: ['glibc'] } : {}),
    files: ['flashattn_cuda.node'],
  };
  writeFileSync(join(dir, 'package.json'), `${JSON.stringify(cudaManifest, null, 2)}\n`);
  cuda = npmPack(dir);
  log(`pack: ${cuda} (${(statSync(cuda).size / 1024 / 1024).toFixed(1)} MiB)`);
} else {
  log(`pack: no addon at ${addon} (no nvcc here): ${cudaName} is not packed`);
}
rmSync(stage, { recursive: true, force: true });
if (json)
  console.log(
    JSON.stringify({
      library,
      cuda,
      sizes: { library: statSync(library).size, cuda: cuda ? statSync(cuda).size : null },
    }),
  );
