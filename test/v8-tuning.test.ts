import { expect } from 'chai';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BUNDLED_CONFIG } from '../src/cli/config-path.js';
import { applyServeV8Flags, SERVE_V8_FLAGS } from '../src/cli/v8-tuning.js';
import { startServe } from './helpers/cli.js';

const FLAG_MESSAGE = 'V8 flags set for the Check path';

/** Writes the bundled example with free ports and `log.level: debug`, so the flag line shows, and returns its path. */
function debugConfig(): string {
  const dir = mkdtempSync(join(tmpdir(), 'v8-tuning-test-'));
  const path = join(dir, 'config.yaml');
  const text = readFileSync(BUNDLED_CONFIG, 'utf8')
    .replace('127.0.0.1:9191', '127.0.0.1:0')
    .replace('127.0.0.1:9192', '127.0.0.1:0')
    .replace(/^  level: info\b/m, '  level: debug');
  expect(text, 'the example sets log.level info').to.match(/^ {2}level: debug\b/m);
  writeFileSync(path, text);
  return path;
}

describe('V8 flags of serve', () => {
  it('sets the inlining budget when node was started without it', () => {
    expect(SERVE_V8_FLAGS).to.include('--max-inlined-bytecode-size-cumulative=4600');
    expect(applyServeV8Flags(['--enable-source-maps'])).to.deep.equal([...SERVE_V8_FLAGS]);
  });

  it('keeps an operator\'s own value', () => {
    expect(applyServeV8Flags(['--max-inlined-bytecode-size-cumulative=1000'])).to.deep.equal([]);
    expect(applyServeV8Flags(['--max_inlined_bytecode_size_cumulative=1000'])).to.deep.equal([]);
    expect(applyServeV8Flags(['-max-inlined-bytecode-size-cumulative=1000'])).to.deep.equal([]);
    expect(applyServeV8Flags(['--max-inlined-bytecode-size=1000'])).to.deep.equal([...SERVE_V8_FLAGS]);
  });

  it('logs the flags a served process set', async () => {
    const serve = await startServe(['--config', debugConfig()]);
    try {
      const record = await serve.waitForRecord((candidate) => candidate.msg === FLAG_MESSAGE);
      expect(record.v8Flags).to.deep.equal([...SERVE_V8_FLAGS]);
    } finally {
      await serve.terminate();
    }
  });

  it('sets no flag over a node option', async () => {
    const serve = await startServe(['--config', debugConfig()], {}, ['--max-inlined-bytecode-size-cumulative=1000']);
    try {
      expect(serve.records.some((record) => record.msg === 'configuration loaded')).to.equal(true);
      expect(serve.records.some((record) => record.msg === FLAG_MESSAGE)).to.equal(false);
    } finally {
      await serve.terminate();
    }
  });
});
