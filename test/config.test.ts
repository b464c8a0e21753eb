import { expect } from 'chai';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../src/config/errors.js';
import { loadConfigFile, parseConfig } from '../src/config/load.js';

function problemsOf(text: string, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    parseConfig(text, '/tmp/test.yaml', { env });
  } catch (error) {
    expect(error).to.be.instanceOf(ConfigError);
    return [...(error as ConfigError).problems];
  }
  return [];
}

describe('configuration loader', () => {
  it('applies the documented defaults to an empty file', () => {
    const config = parseConfig('', '/tmp/empty.yaml');
    expect(config.grpc.address).to.equal('127.0.0.1:9191');
    expect(config.http.address).to.equal('127.0.0.1:9192');
    expect(config.mode).to.equal('enforce');
    expect(config.store).to.deep.equal({ type: 'memory' });
    expect(config.ddi.certificate.trustXfcc).to.equal(false);
    expect(config.ddi.certificate.proxyHeaders).to.deep.equal({ controllerIdHeader: 'X-Controller-Id', authorityHeader: 'X-Authority' });
    expect(config.upstream.identityHeaders).to.deep.equal({ tenant: 'x-ddi-tenant', controllerId: 'x-ddi-controller-id', authMethod: 'x-ddi-auth-method' });
    expect(config.upstream.hawkbitHeaderAuth.enabled).to.equal(false);
  });

  const invalid: [string, string, RegExp][] = [
    ['an unknown top-level key', 'grcp: {}', /^grcp: unknown key/],
    ['a misspelt nested key', 'ddi: { targetToken: { enable: true } }', /^ddi\.targetToken\.enable: unknown key/],
    ['a string for a boolean', 'ddi: { gatewayToken: { enabled: "yes" } }', /^ddi\.gatewayToken\.enabled: expected true or false/],
    ['an unknown mode', 'mode: permissive', /^mode: expected one of enforce, audit/],
    ['an address without port', 'grpc: { address: "127.0.0.1" }', /^grpc\.address: "127\.0\.0\.1" is not HOST:PORT/],
    ['a port over 65535', 'http: { address: "127.0.0.1:70000" }', /^http\.address:/],
    ['a bad trusted proxy', 'ddi: { certificate: { trustedProxies: ["10.0.0.0/33"] } }', /^ddi\.certificate\.trustedProxies\[0\]: .*prefix length/],
    ['a bad header name', 'upstream: { identityHeaders: { tenant: "x tenant" } }', /^upstream\.identityHeaders\.tenant: "x tenant" is not a valid HTTP header name/],
    ['header auth without authority', 'upstream: { hawkbitHeaderAuth: { enabled: true } }', /^upstream\.hawkbitHeaderAuth\.authority: must be set/],
    ['an unknown store type', 'store: { type: postgres }', /^store\.type: expected one of memory, redis/],
    ['an unknown tenant key', 'tenants: { T: { config: { authentication.targettoken.enable: true } } }', /^tenants\.T\.config\.authentication\.targettoken\.enable: unknown key/],
    ['a tenant name over 40 characters', `tenants: { ${'t'.repeat(41)}: {} }`, /tenant name must be 1 to 40 characters/],
    ['two tenants differing in case', 'tenants: { abc: {}, ABC: {} }', /^tenants\.ABC: same tenant as "abc"/],
    ['a controller id with a space', 'tenants: { T: { targets: { "a b": { securityToken: x } } } }', /controller id must not contain whitespace/],
    ['a token over 128 characters', `tenants: { T: { targets: { d: { securityToken: "${'a'.repeat(129)}" } } } }`, /security token must be 1 to 128 characters; got 129/],
    ['a token outside token68', 'tenants: { T: { targets: { d: { securityToken: "a b" } } } }', /security token must use only the token68 characters/],
    ['a digest that is not hex', 'tenants: { T: { targets: { d: { securityTokenSha256: "xyz" } } } }', /securityTokenSha256: expected 64 hex digits/],
    ['a secret from a missing variable', 'tenants: { T: { config: { authentication.gatewaytoken.key: { env: NOPE_KEY } } } }', /environment variable NOPE_KEY is not set/],
    ['a secret from a missing file', 'tenants: { T: { config: { authentication.gatewaytoken.key: { file: /nonexistent/key } } } }', /cannot read secret file \/nonexistent\/key: ENOENT/],
    ['broken YAML', 'grpc: [', /not valid YAML/],
    ['a trusted proxy range of the whole Internet', 'ddi: { certificate: { trustedProxies: ["0.0.0.0/0"] } }', /trustedProxies\[0\]: "0\.0\.0\.0\/0" is too broad/],
    ['an IPv6 trusted range broader than /16', 'ddi: { certificate: { trustedProxies: ["::/0"] } }', /is too broad/],
    ['an exempt source range of the whole Internet', 'rateLimit: { exemptSources: ["0.0.0.0/1"] }', /rateLimit\.exemptSources\[0\]: .* is too broad/],
    ['a gateway key with a space', 'tenants: { T: { config: { authentication.gatewaytoken.key: "my key" } } }', /gatewaytoken\.key: gateway key must use only the token68 characters/],
    ['two identity headers with one name', 'upstream: { identityHeaders: { tenant: x-id, controllerId: X-Id } }', /upstream\.identityHeaders\.controllerId: "X-Id" is also used by upstream\.identityHeaders\.tenant/],
    ['a reserved identity header name', 'upstream: { identityHeaders: { authMethod: authorization } }', /upstream\.identityHeaders\.authMethod: "authorization" is reserved/],
    ['Host as the tenant header', 'upstream: { identityHeaders: { tenant: host } }', /"host" is reserved/],
    ['Authorization as the proxy controller id header', 'ddi: { certificate: { proxyHeaders: { controllerIdHeader: Authorization } } }', /proxyHeaders\.controllerIdHeader: "Authorization" is reserved/],
    ['a pseudo-header to remove', 'upstream: { removeHeaders: [":path"] }', /upstream\.removeHeaders\[0\]: ":path" is not a valid HTTP header name/],
    ['an authority with a space', 'upstream: { hawkbitHeaderAuth: { enabled: true, authority: "edge ok" } }', /authority: must be printable ASCII without spaces/],
    ['an empty token digest key', 'tokenDigestKey: ""', /^tokenDigestKey: is empty/],
    ['a log file that is a directory', 'log: { destination: /tmp }', /^log\.destination: \/tmp is a directory/],
    ['a log file below /proc', 'log: { destination: /proc/foo/bar.log }', /^log\.destination: \/proc\/foo\/bar\.log is on a kernel file system/],
    ['a log file below a file', 'log: { destination: /etc/hostname/x.log }', /^log\.destination: cannot write \/etc\/hostname\/x\.log \(ENOTDIR\)/],
    ['Redis credentials given twice', 'store: { type: redis, redis: { url: "redis://u:pw@127.0.0.1:6379", password: x } }', /store\.redis\.url: contains credentials while/],
    ['a controller id with a slash', 'tenants: { T: { targets: { "a/b": { securityToken: x } } } }', /controller id must not be "\." or "\.\." or contain "\/"/],
    ['a tenant named ..', 'tenants: { "..": {} }', /tenant name must not be "\." or "\.\."/],
    ['a Redis URL with a bad port', 'store: { type: redis, redis: { url: "redis://127.0.0.1:notaport/" } }', /^store\.redis\.url: .* is not a valid URL/],
    ['a Redis URL with a path', 'store: { type: redis, redis: { url: "redis://127.0.0.1:6379/abc" } }', /^store\.redis\.url: .* has a path that is not a database number/],
    ['a hawkBit header as identity header', 'upstream: { identityHeaders: { tenant: X-Controller-Id } }', /identityHeaders\.tenant: "X-Controller-Id" is one of hawkBit's identity headers/],
  ];
  for (const [condition, text, pattern] of invalid) {
    it(`rejects ${condition}, naming the key`, () => {
      const problems = problemsOf(text);
      expect(problems.some((problem) => pattern.test(problem)), problems.join(' | ')).to.equal(true);
    });
  }

  it('lists every problem at once', () => {
    expect(problemsOf('mode: x\ngrcp: {}\nstore: { type: y }')).to.have.length(3);
  });

  it('reads secrets from a file and from the environment', () => {
    const dir = mkdtempSync(join(tmpdir(), 'config-test-'));
    writeFileSync(join(dir, 'device.token'), 'filetoken123\n');
    const config = parseConfig(
      `tenants:
  T:
    config: { authentication.gatewaytoken.key: { env: GW_KEY } }
    targets:
      d: { securityToken: { file: device.token } }
`,
      join(dir, 'config.yaml'),
      { env: { GW_KEY: 'envkey456' } },
    );
    expect(config.tenants.T.config['authentication.gatewaytoken.key']).to.equal('envkey456');
    expect(config.tenants.T.targets.get('d')?.securityToken).to.equal('filetoken123');
  });

  it('masks the password of a mistyped Redis URL', () => {
    for (const url of ['http://u:PWSECRET1@127.0.0.1/', 'rediss//u:PWSECRET1@host', 'redis://u:PW@SECRET1@host:notaport']) {
      const problems = problemsOf(`store: { type: redis, redis: { url: "${url}" } }`);
      expect(problems.join('\n'), url).to.include('store.redis.url');
      expect(problems.join('\n'), url).not.to.include('SECRET1');
    }
  });

  it('never puts a secret value into a problem', () => {
    const problems = problemsOf('tenants: { T: { targets: { d: { securityToken: "secret value with spaces" } } } }');
    expect(problems.join('\n')).not.to.include('secret value');
  });

  it('names the file when it cannot be read', () => {
    expect(() => loadConfigFile('/nonexistent/config.yaml')).to.throw(ConfigError, /\/nonexistent\/config\.yaml.*ENOENT/s);
  });

  it('loads 100,000 targets in a few seconds', function () {
    this.timeout(30_000);
    const lines = ['tenants:', '  BIG:', '    config: { authentication.targettoken.enabled: true }', '    targets:'];
    for (let i = 0; i < 100_000; i++) {
      lines.push(`      device-${i}: { securityToken: "${i.toString(16).padStart(32, '0')}" }`);
    }
    const config = parseConfig(lines.join('\n'), '/tmp/big.yaml');
    expect(config.tenants.BIG.targets.size).to.equal(100_000);
  });
});

describe('configuration errors', () => {
  it('never quote the file in a YAML syntax error', () => {
    let message = '';
    try {
      parseConfig('tokenDigestKey: S3CR3T-HMAC-KEY\nbad: "unterminated\n', '/tmp/secret.yaml');
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).to.match(/not valid YAML at line \d+, column \d+/);
    expect(message).not.to.include('S3CR3T');
  });

  it('reports a recursive alias by key', () => {
    expect(problemsOf('upstream: { removeHeaders: &loop ["x-a", *loop] }\n')).to.deep.equal(['upstream.removeHeaders[1]: expected a string, got a list']);
  });
});

describe('keys YAML reads as other values', () => {
  const target = '{ securityToken: "0123456789abcdef" }';

  it('rejects a controller id read as a number', () => {
    const problems = problemsOf(`tenants:\n  DEFAULT:\n    targets:\n      0x1F: ${target}\n      device-01: ${target}\n`);

    expect(problems).to.have.length(1);
    expect(problems[0]).to.include('ambiguous YAML');
    expect(problems[0]).to.include('tenants.DEFAULT.targets: 0x1F reads as 31');
    expect(problems[0]).to.include('Quote such keys to keep them as written, for example "0x1F"');
  });

  it('names each rewritten spelling', () => {
    const cases: [string, string][] = [
      ['1e3', '1000'],
      ['007', '7'],
      ['+12', '12'],
      ['0o17', '15'],
      ['.5', '0.5'],
      ['True', 'true'],
      ['FALSE', 'false'],
      ['~', 'null'],
      ['.inf', 'Infinity'],
    ];
    for (const [written, read] of cases) {
      const problems = problemsOf(`tenants:\n  DEFAULT:\n    targets:\n      ${written}: ${target}\n`);

      expect(problems.join('\n'), written).to.include(`tenants.DEFAULT.targets: ${written} reads as ${read}`);
    }
  });

  it('keeps keys that read as written', () => {
    const config = parseConfig(
      `tenants:\n  DEFAULT:\n    targets:\n      "0x1F": ${target}\n      '1e3': ${target}\n      12345: ${target}\n      "007": ${target}\n      true: ${target}\n      1.5: ${target}\n`,
      '/tmp/test.yaml',
    );

    expect([...config.tenants.DEFAULT.targets.keys()].sort()).to.deep.equal(['007', '0x1F', '1.5', '12345', '1e3', 'true']);
  });

  it('counts keys past the named ones', () => {
    const problems = problemsOf(`tenants:\n  DEFAULT:\n    targets:\n${['0x1', '0x2', '0x3', '0x4', '0x5'].map((id) => `      ${id}: ${target}\n`).join('')}`);

    expect(problems[0]).to.include('0x3 reads as 3');
    expect(problems[0]).not.to.include('0x4 reads as');
    expect(problems[0]).to.include('and 2 more');
  });

  it('finds keys in tenants, lists and merges', () => {
    const text = `defaults: &defaults\n  0x10: ${target}\nlisted:\n  - { 0x30: a }\ntenants:\n  0x20:\n    targets:\n      <<: *defaults\n      device-01: ${target}\n`;
    let problem = '';
    try {
      parseConfig(text, '/tmp/test.yaml');
    } catch (error) {
      problem = (error as ConfigError).problems[0];
    }

    expect(problem).to.include('defaults: 0x10 reads as 16');
    expect(problem).to.include('listed[0]: 0x30 reads as 48');
    expect(problem).to.include('tenants: 0x20 reads as 32');
    expect(problem).to.include('and 1 more');
  });

  it('rejects quoted and plain keys spelled alike', () => {
    const problems = problemsOf(`tenants:\n  DEFAULT:\n    targets:\n      0x1F: ${target}\n      "0x1F": ${target}\n`);

    expect(problems).to.have.length(1);
    expect(problems[0]).to.match(/ambiguous YAML: duplicated mapping key/);
  });
});
