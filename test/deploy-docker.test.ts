/**
 * Checks the Dockerfile without a container engine: its stages, what it
 * copies, the user it runs as, the health check and the command. Building
 * and running the image is not covered here.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';

const REPO_ROOT = findRepoRoot();

interface Instruction {
  keyword: string;
  argument: string;
  /** Index of the build stage (0-based) the instruction belongs to. */
  stage: number;
}

/** Splits a Dockerfile into instructions, joining continuation lines and dropping comments. */
function parseDockerfile(text: string): Instruction[] {
  const instructions: Instruction[] = [];
  let stage = -1;
  let pending = '';
  for (const line of text.split('\n')) {
    if (pending === '' && /^\s*#/.test(line)) {
      continue;
    }
    if (line.trimEnd().endsWith('\\')) {
      pending += line.trimEnd().slice(0, -1) + ' ';
      continue;
    }
    const full = (pending + line).trim();
    pending = '';
    if (full === '') {
      continue;
    }
    const match = /^(\w+)\s+(.*)$/s.exec(full);
    if (!match) {
      continue;
    }
    const keyword = match[1].toUpperCase();
    if (keyword === 'FROM') {
      stage++;
    }
    instructions.push({ keyword, argument: match[2].trim(), stage });
  }
  return instructions;
}

/** Reports whether .dockerignore patterns keep `path` out of the build context, by first path segment or exact match. */
function ignored(path: string, patterns: string[]): boolean {
  const first = path.replace(/^\.\//, '').split('/')[0];
  return patterns.some((pattern) => pattern === first || pattern === path.replace(/^\.\//, ''));
}

function findRepoRoot(): string {
  let directory = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(directory, 'Dockerfile'))) {
    const parent = dirname(directory);
    if (parent === directory) {
      throw new Error('repository root with a Dockerfile not found above the test file');
    }
    directory = parent;
  }
  return directory;
}

describe('deploy: Dockerfile', function () {
  const instructions = parseDockerfile(readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8'));
  const ignorePatterns = readFileSync(join(REPO_ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  const lastStage = Math.max(...instructions.map((instruction) => instruction.stage));
  const runtime = instructions.filter((instruction) => instruction.stage === lastStage);

  it('builds in one stage and runs in another', function () {
    expect(lastStage).to.be.at.least(1);
    const build = instructions.filter((instruction) => instruction.stage === 0);
    expect(build.some((instruction) => instruction.keyword === 'RUN' && /\bnpm ci\b/.test(instruction.argument) && !instruction.argument.includes('--omit=dev'))).to.equal(true);
    expect(build.some((instruction) => instruction.keyword === 'RUN' && /\btsc\b/.test(instruction.argument))).to.equal(true);
    expect(runtime.some((instruction) => instruction.keyword === 'RUN' && /\bnpm ci\b.*--omit=dev/.test(instruction.argument))).to.equal(true);
  });

  it('copies only files that exist and are in the context', function () {
    for (const instruction of instructions.filter((entry) => entry.keyword === 'COPY' && !entry.argument.startsWith('--from='))) {
      const parts = instruction.argument.split(/\s+/).filter((part) => !part.startsWith('--'));
      for (const source of parts.slice(0, -1)) {
        expect(existsSync(join(REPO_ROOT, source)), `COPY source ${source}`).to.equal(true);
        expect(ignored(source, ignorePatterns), `${source} is excluded by .dockerignore`).to.equal(false);
      }
    }
  });

  it('copies the compiled code from the build stage', function () {
    const copy = runtime.find((instruction) => instruction.keyword === 'COPY' && instruction.argument.startsWith('--from='));
    expect(copy?.argument).to.match(/\/app\/dist\/src\s+\.\/dist\/src$/);
    expect(existsSync(join(REPO_ROOT, 'src/cli/main.ts')), 'src/cli/main.ts compiles to dist/src/cli/main.js').to.equal(true);
  });

  it('keeps tests and build output out of the context', function () {
    for (const path of ['node_modules', 'dist', 'test', '.git']) {
      expect(ignorePatterns, path).to.include(path);
    }
  });

  it('runs as a numeric non-root user', function () {
    const users = runtime.filter((instruction) => instruction.keyword === 'USER');
    expect(users.length).to.be.greaterThan(0);
    const user = users.at(-1)!.argument;
    expect(user, 'numeric, so Kubernetes can verify runAsNonRoot').to.match(/^\d+(:\d+)?$/);
    expect(Number(user.split(':')[0])).to.not.equal(0);
  });

  it('checks /healthz with node', function () {
    const check = runtime.find((instruction) => instruction.keyword === 'HEALTHCHECK');
    expect(check?.argument).to.match(/CMD \["node",/);
    expect(check?.argument).to.contain('/healthz');
    expect(check?.argument).to.not.match(/\bcurl\b|\bwget\b/);
  });

  it('serves the mounted configuration by default', function () {
    const command = runtime.filter((instruction) => instruction.keyword === 'CMD').at(-1);
    expect(JSON.parse(command!.argument)).to.deep.equal(['node', 'dist/src/cli/main.js', 'serve', '--config', '/etc/hawkbit-ext-authz/config.yaml']);
  });

  it('exposes the configured ports', function () {
    const exposed = runtime.filter((instruction) => instruction.keyword === 'EXPOSE').flatMap((instruction) => instruction.argument.split(/\s+/));
    expect(exposed).to.include.members(['9191', '9192']);
  });
});
