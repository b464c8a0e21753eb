import { expect } from 'chai';
import { createHash } from 'node:crypto';

import { parseConfig, parseYaml, validateControllerId } from '../src/config/load.js';
import { MemoryStore, TokenDigester } from '../src/store/index.js';

const TARGET_COUNT = 50;

/** Token of the target with this index: distinct per target and valid as a hawkBit token. */
function token(index: number): string {
  return `token-${String(index).padStart(4, '0')}-${'a'.repeat(20)}`;
}

function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** Configuration with TARGET_COUNT targets: every fifth without token and, without a digest key, every third given by its SHA-256. */
function configText(digestKey?: string): string {
  const lines = digestKey === undefined ? [] : [`tokenDigestKey: "${digestKey}"`];
  lines.push('tenants:', '  DEFAULT:', '    config: { authentication.targettoken.enabled: true }', '    targets:');
  for (let index = 0; index < TARGET_COUNT; index++) {
    if (index % 5 === 4) {
      lines.push(`      device-${index}: {}`);
    } else if (index % 3 === 2 && digestKey === undefined) {
      lines.push(`      device-${index}: { securityTokenSha256: "${sha256Hex(token(index))}" }`);
    } else {
      lines.push(`      device-${index}: { securityToken: "${token(index)}" }`);
    }
  }
  return `${lines.join('\n')}\n`;
}

describe('MemoryStore targets', function () {
  for (const digestKey of [undefined, 'test-digest-key-0123456789']) {
    const label = digestKey === undefined ? 'SHA-256' : 'HMAC-SHA-256';

    it(`matches each target's own token (${label})`, function () {
      const config = parseConfig(configText(digestKey), 'test configuration');
      const digester = new TokenDigester(config.tokenDigestKey);
      const store = new MemoryStore(config.tenants, digester);

      for (let index = 0; index < TARGET_COUNT; index++) {
        const target = store.getTarget('DEFAULT', `device-${index}`);
        expect(target, `device-${index}`).to.not.equal(undefined);
        const digest = target!.securityTokenDigest;
        if (index % 5 === 4) {
          expect(digest, `device-${index} has no token`).to.equal(undefined);
          continue;
        }
        expect(digester.matches(token(index), digest), `device-${index} own token`).to.equal(true);
        expect(digester.matches(token(index + 1), digest), `device-${index} next token`).to.equal(false);
        expect(digester.matches(token(index - 1), digest), `device-${index} previous token`).to.equal(false);
        expect(digest!.equals(digester.digest(token(index))), `device-${index} digest`).to.equal(true);
      }
    });
  }

  it('digestInto writes the digest at the offset', function () {
    for (const digester of [new TokenDigester(), new TokenDigester('key')]) {
      const buffer = Buffer.alloc(96, 0xee);
      digester.digestInto('secret', buffer, 32);
      expect(buffer.subarray(32, 64).equals(digester.digest('secret')), digester.algorithm).to.equal(true);
      expect(buffer.subarray(0, 32).every((byte) => byte === 0xee), `${digester.algorithm} before`).to.equal(true);
      expect(buffer.subarray(64).every((byte) => byte === 0xee), `${digester.algorithm} after`).to.equal(true);
    }
  });
});

describe('validateControllerId length', function () {
  const cases: [string, string, boolean][] = [
    ['empty', '', false],
    ['256 ASCII characters', 'a'.repeat(256), true],
    ['257 ASCII characters', 'a'.repeat(257), false],
    ['256 code points in 512 UTF-16 units', '😀'.repeat(256), true],
    ['257 code points in 514 UTF-16 units', '😀'.repeat(257), false],
  ];
  for (const [label, controllerId, valid] of cases) {
    it(`${valid ? 'accepts' : 'rejects'} ${label}`, function () {
      const problem = validateControllerId(controllerId);
      if (valid) {
        expect(problem).to.equal(undefined);
      } else {
        expect(problem).to.match(/must be 1 to 256 characters/);
      }
    });
  }
});

describe('configuration YAML schema', function () {
  it('keeps a date-like controller id as text', function () {
    const config = parseConfig('tenants:\n  DEFAULT:\n    targets:\n      2024-05-01: { securityToken: "abc" }\n', 'test configuration');
    expect([...config.tenants.DEFAULT.targets.keys()]).to.deep.equal(['2024-05-01']);
  });

  it('applies merge keys', function () {
    const text = [
      'tenants:',
      '  FIRST:',
      '    config: &shared { authentication.targettoken.enabled: true }',
      '  SECOND:',
      '    config:',
      '      <<: *shared',
      '      authentication.gatewaytoken.enabled: false',
      '',
    ].join('\n');
    const config = parseConfig(text, 'test configuration');
    expect(config.tenants.SECOND.config['authentication.targettoken.enabled']).to.equal(true);
    expect(config.tenants.SECOND.config['authentication.gatewaytoken.enabled']).to.equal(false);
  });

  it('reports a syntax error without file text', function () {
    const problem = parseYaml('tenants:\n  DEFAULT:\n    targets:\n      device-1: { securityToken: secret-token-1234 } }\n', 'tokens.yaml');
    expect(problem.ok).to.equal(false);
    expect(JSON.stringify(problem)).to.not.include('secret-token-1234');
    expect(JSON.stringify(problem)).to.match(/not valid YAML at line \d+, column \d+/);
  });
});
