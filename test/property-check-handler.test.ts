import { expect } from 'chai';
import { X509Certificate } from 'node:crypto';
import { BlockList, isIP } from 'node:net';
import fc from 'fast-check';

import { parseDdiPath } from '../src/ddi/path.js';
import { xfccElementLikeEnvoy } from '../src/envoy/envoy-encoding.js';
import type { CheckRequestMessage, CheckResponseMessage, HeaderValueMessage } from '../src/envoy/messages.js';
import { anyString, applyEdits, fuzzParameters, replaying, serviceRuns, stringEdits } from './helpers/fuzz.js';
import { envoyEncodePem, TestPki, type TestCertificate } from './helpers/pki.js';
import { envoyRequest, outcome, setHeaders, startService, type RunningService } from './helpers/service.js';

/** Target tokens by controller id, all in tenant DEFAULT. */
const TOKENS: Readonly<Record<string, string>> = {
  'device-01': '4a7c1e9b2d3f40a6b8c0d2e4f6a8b0c2',
  'device-02': '0b1c2d3e4f5061728394a5b6c7d8e9f0',
  'gerät-ü': 'c0ffee00c0ffee00c0ffee00c0ffee00',
};
const GATEWAY_KEY = 'gw-9f8e7d6c5b4a39281706f5e4d3c2b1a0';
const PROXY_AUTHORITY = 'fuzz-proxy-authority';
/** Addresses of the proxy that may send hawkBit's controller-id and authority headers. */
const TRUSTED_PROXIES = [
  { address: '10.9.8.0', prefix: 24, family: 'ipv4' as const },
  { address: '2001:db8:9::', prefix: 48, family: 'ipv6' as const },
];

/** Identity headers the service sets, and hawkBit's reverse-proxy headers, bare or indexed; a client copy must never pass. */
const IDENTITY_HEADER = /^(x-ddi-(tenant|controller-id|auth-method)|x-controller-id|x-ssl-client-cn|(x-authority|x-ssl-issuer-hash)(-.*)?)$/s;

const TOKEN_DEVICES = Object.keys(TOKENS);
const OTHER_DEVICES = ['no-token', 'unknown-device', 'DEVICE-01', 'device-1', 'device-01 '];

function serviceConfig(authority: string): string {
  const targets = Object.entries(TOKENS)
    .map(([controllerId, token]) => `      "${controllerId}": { securityToken: "${token}" }`)
    .join('\n');
  // The failure limits are set far above the number of cases, so the limiter counts every
  // failure but never denies with 429 and the near-valid requests can still be allowed.
  return `
rateLimit:
  perSource: { maxFailures: 1000000 }
  perTarget: { maxFailures: 1000000 }
ddi:
  certificate:
    trustXfcc: true
    trustedProxies: [${TRUSTED_PROXIES.map((net) => `"${net.address}/${net.prefix}"`).join(', ')}]
tenants:
  DEFAULT:
    config:
      authentication.targettoken.enabled: true
      authentication.gatewaytoken.enabled: true
      authentication.gatewaytoken.key: "${GATEWAY_KEY}"
      authentication.header.enabled: true
      authentication.header.authority: "${authority}; ${PROXY_AUTHORITY}"
    targets:
${targets}
      no-token: {}
  CLOSED:
    config:
      authentication.targettoken.enabled: false
      authentication.gatewaytoken.enabled: false
      authentication.gatewaytoken.key: "${GATEWAY_KEY}"
      authentication.header.enabled: false
      authentication.header.authority: "${authority}; ${PROXY_AUTHORITY}"
    targets:
${targets}
`;
}

/** A request before it becomes a CheckRequest message. */
interface RequestSpec {
  path: string;
  /** Leaves `http.path` empty, so the service reads the `:path` header. */
  pathInHeaderOnly: boolean;
  /** Entries of the `headers` map; a later entry overwrites an earlier one with the same name. */
  headers: [string, string][];
  /** `header_map` entries, with `raw_value` bytes or a `value` string. */
  rawHeaders: HeaderValueMessage[];
  certificate: string;
  source: string | undefined;
}

function toMessage(spec: RequestSpec): CheckRequestMessage {
  const headers: Record<string, string> = { ':path': spec.path, ':method': 'GET', 'x-request-id': 'fuzz' };
  for (const [name, value] of spec.headers) {
    headers[name] = value;
  }
  return {
    attributes: {
      source: {
        ...(spec.source === undefined ? {} : { address: { socket_address: { address: spec.source, port_value: 51234 } } }),
        certificate: spec.certificate,
      },
      request: {
        http: {
          id: 'fuzz',
          method: 'GET',
          path: spec.pathInHeaderOnly ? '' : spec.path,
          host: 'hawkbit.example',
          headers,
          ...(spec.rawHeaders.length === 0 ? {} : { header_map: { headers: spec.rawHeaders } }),
        },
      },
    },
  };
}

/** Header values by lower-case name as the service reads them: the `headers` map first, then `header_map`. */
function headerValues(message: CheckRequestMessage): Map<string, string[]> {
  const values = new Map<string, string[]>();
  const add = (name: string, value: string) => {
    const key = name.toLowerCase();
    values.set(key, [...(values.get(key) ?? []), value]);
  };
  const http = message.attributes?.request?.http ?? {};
  for (const [name, value] of Object.entries(http.headers ?? {})) {
    add(name, value);
  }
  for (const entry of http.header_map?.headers ?? []) {
    const raw = entry.raw_value;
    add(entry.key ?? '', raw && raw.length > 0 ? Buffer.from(raw).toString('latin1') : (entry.value ?? ''));
  }
  return values;
}

describe('Check handler properties', function () {
  let service: RunningService;
  let pki: TestPki;
  let deviceCa: TestCertificate;
  let certificates: Record<'device01' | 'device02' | 'untrusted' | 'twoNames' | 'ca', TestCertificate>;
  const trustedSources = new BlockList();
  for (const net of TRUSTED_PROXIES) {
    trustedSources.addSubnet(net.address, net.prefix, net.family);
  }

  before(async function () {
    this.timeout(60_000);
    pki = TestPki.create();
    const root = pki.rootCa('/O=Fuzz/CN=Fuzz Root CA');
    deviceCa = pki.intermediateCa(root, '/O=Fuzz/CN=Fuzz Device CA');
    const otherCa = pki.rootCa('/O=Elsewhere/CN=Other CA');
    certificates = {
      device01: pki.device(deviceCa, '/O=Fuzz/CN=device-01'),
      device02: pki.device(deviceCa, '/CN=device-02'),
      untrusted: pki.device(otherCa, '/CN=device-01'),
      twoNames: pki.issue({ subject: '/CN=device-01/CN=device-02', issuer: deviceCa }),
      ca: deviceCa,
    };
    service = await startService(serviceConfig(pki.opensslIssuerHash(certificates.device01)));
  });

  after(async () => {
    await service?.stop();
    pki?.cleanup();
  });

  // ---- The oracle: what a request must carry for an allow to be right. ----

  /** Returns whether a source address lies in a trusted proxy network, plain or as IPv4-mapped IPv6. */
  function isTrustedSource(address: string | undefined): boolean {
    if (!address) {
      return false;
    }
    const candidates = [address, /^::ffff:(.*)$/i.exec(address)?.[1] ?? ''];
    return candidates.some((candidate) => {
      const version = isIP(candidate);
      return version !== 0 && trustedSources.check(candidate, version === 4 ? 'ipv4' : 'ipv6');
    });
  }

  /**
   * Returns whether a PEM block names the controller id as its only CN and the trusted CA as its issuer.
   * The DER is read from the base64 body without whitespace, because OpenSSL's PEM reader rejects
   * blank lines that the service accepts.
   */
  function certifies(pemBlock: string, controllerId: string): boolean {
    const body = pemBlock.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, '');
    let certificate: X509Certificate;
    try {
      certificate = new X509Certificate(Buffer.from(body, 'base64'));
    } catch {
      return false;
    }
    const commonNames = certificate.subject.split('\n').filter((line) => line.startsWith('CN='));
    return commonNames.length === 1 && commonNames[0] === `CN=${controllerId}` && certificate.issuer === new X509Certificate(deviceCa.pem).subject;
  }

  /**
   * Returns the valid credential that `message` carries for the identity the allow `response`
   * names, or the problem when it carries none. The service trusts `source.certificate` and XFCC
   * as verified by Envoy, so any certificate with the right CN and issuer name counts.
   */
  function credentialOfAllow(message: CheckRequestMessage, response: CheckResponseMessage): { credential: string } | { problem: string } {
    const headers = headerValues(message);
    const http = message.attributes?.request?.http ?? {};
    const path = http.path || (headers.get(':path')?.[0] ?? '');
    const parsed = parseDdiPath(path);
    if (!parsed.ok) {
      return { problem: `allowed a path that is not a DDI path: ${parsed.reason}` };
    }
    const { tenantKey, controllerId } = parsed.target;
    if (tenantKey !== 'DEFAULT') {
      return { problem: `allowed tenant ${tenantKey}, which has every method off or does not exist` };
    }
    const identity = setHeaders(response);
    if (identity['x-ddi-tenant'] !== 'DEFAULT' || response.dynamic_metadata?.fields.controllerId?.stringValue !== controllerId) {
      return { problem: `identity ${JSON.stringify(identity)} does not name the path's controller id ${controllerId}` };
    }

    const authorization = headers.get('authorization') ?? [];
    const credential = (scheme: string) => (authorization.length === 1 ? new RegExp(`^[ \\t]*${scheme} +([^ \\t]+)[ \\t]*$`, 'i').exec(authorization[0])?.[1] : undefined);

    switch (identity['x-ddi-auth-method']) {
      case 'target-token':
        return TOKENS[controllerId] !== undefined && credential('targettoken') === TOKENS[controllerId]
          ? { credential: 'target token' }
          : { problem: 'target token is not the one of the controller id' };
      case 'gateway-token':
        return credential('gatewaytoken') === GATEWAY_KEY ? { credential: 'gateway key' } : { problem: 'gateway token is not the key' };
      case 'certificate': {
        const authorities = [...headers.entries()]
          .filter(([name]) => /^x-authority(-\d+)?$/.test(name))
          .flatMap(([, values]) => values.flatMap((value) => value.split(/[,;]/)))
          .map((value) => value.trim().toLowerCase().replace(/:/g, ''));
        const proxyVouches =
          isTrustedSource(message.attributes?.source?.address?.socket_address?.address) &&
          JSON.stringify(headers.get('x-controller-id')) === JSON.stringify([controllerId]) &&
          authorities.includes(PROXY_AUTHORITY);

        const encoded = [message.attributes?.source?.certificate ?? '', ...(headers.get('x-forwarded-client-cert') ?? [])];
        const blocks = encoded
          .map((text) => text.replace(/%([0-9a-f]{2})/gi, (_, hex: string) => String.fromCharCode(parseInt(hex, 16))))
          .flatMap((text) => text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []);
        const certificateVouches = blocks.some((block) => certifies(block, controllerId));
        if (proxyVouches) {
          return { credential: 'trusted proxy headers' };
        }
        return certificateVouches ? { credential: 'certificate' } : { problem: 'neither a trusted proxy nor a certificate names the controller id' };
      }
      default:
        return { problem: `unknown method ${identity['x-ddi-auth-method']}` };
    }
  }

  /**
   * Returns the client-sent identity headers that an allow neither overwrites nor removes, and any
   * header it sets to a value that is not printable ASCII. Both lists must be empty, or a client
   * could pass its own identity, or a broken header, to the upstream.
   */
  function unsafeIdentityHeaders(message: CheckRequestMessage, response: CheckResponseMessage): string[] {
    const set = (response.ok_response?.headers ?? []).map((option) => option.header.key.toLowerCase());
    const removed = (response.ok_response?.headers_to_remove ?? []).map((name) => name.toLowerCase());
    const leftInPlace = [...headerValues(message).keys()].filter(
      (name) => IDENTITY_HEADER.test(name) && !set.includes(name) && !removed.includes(name),
    );
    const unprintable = (response.ok_response?.headers ?? []).filter((option) => !/^[\x21-\x7e]*$/.test(option.header.value)).map((option) => option.header.key);
    return [...leftInPlace, ...unprintable];
  }

  // ---- Arbitraries: near-valid requests of each method, and arbitrary ones. ----

  const PATH_TOKENS = ['/', '//', '.', '..', '%2F', '%2e', '%', ';', '\\', '?', '#', ' ', 'ä', '%C3%A4', 'A', 'x', '-', 'Controller', '%00'];
  const JUNK_HEADER_NAMES = [
    'authorization', 'Authorization', 'x-forwarded-client-cert', 'x-controller-id', 'x-authority', 'x-authority-0', 'x-authority-1',
    ':path', 'x-ddi-tenant', 'X-DDI-Tenant', 'x-ddi-controller-id', 'x-ddi-auth-method', 'x-ssl-client-cn', 'X-Ssl-Issuer-Hash-1',
    'client-cert', 'x-request-id',
  ];

  /** Returns `arbitrary`'s value in about `percent` of the cases and `fallback` otherwise. */
  function sometimes<T>(percent: number, arbitrary: fc.Arbitrary<T>, fallback: T): fc.Arbitrary<T> {
    return fc.oneof({ arbitrary, weight: percent }, { arbitrary: fc.constant(fallback), weight: 100 - percent });
  }

  const pathFor = (tenant: fc.Arbitrary<string>, controllerId: fc.Arbitrary<string>) =>
    fc
      .tuple(
        tenant,
        controllerId,
        fc.constantFrom('', '', '/deploymentBase/12', '/configData', '/softwaremodules/7/artifacts/image.swu', '/'),
        fc.constantFrom('', '', '?c=-2129030598', '?x=/../;'),
        sometimes(12, stringEdits(fc.oneof(fc.constantFrom(...PATH_TOKENS), anyString(2)), 2), []),
      )
      .map(([tenantName, id, tail, query, edits]) => applyEdits(`/${encodeURIComponent(tenantName)}/controller/v1/${encodeURIComponent(id)}${tail}${query}`, edits));

  const defaultTenant = fc.constantFrom('DEFAULT', 'default', 'Default');
  const anyTenant = fc.oneof({ arbitrary: defaultTenant, weight: 6 }, { arbitrary: fc.constantFrom('CLOSED', 'OTHER', 'DEFAULT1'), weight: 1 });
  const controllerIdOrOther = (id: string) => fc.oneof({ arbitrary: fc.constant(id), weight: 6 }, { arbitrary: fc.constantFrom(...TOKEN_DEVICES, ...OTHER_DEVICES), weight: 1 });

  /** `scheme credential` with the scheme in any case, one to three spaces, and sometimes an edited credential. */
  const authorizationValue = (scheme: string, credential: string) =>
    fc
      .tuple(
        fc.constantFrom(scheme, scheme.toLowerCase(), scheme.toUpperCase()),
        fc.integer({ min: 1, max: 3 }),
        fc.constantFrom('', ' ', '\t'),
        sometimes(12, stringEdits(fc.constantFrom('a', '0', '-', '=', ',', ' ', '')), []),
      )
      .map(([name, spaces, trailing, edits]) => `${name}${' '.repeat(spaces)}${applyEdits(credential, edits)}${trailing}`);

  type Placement = 'map' | 'map-capitalised' | 'raw' | 'value' | 'map-and-raw';
  const placement = fc.constantFrom<Placement>('map', 'map', 'map', 'map-capitalised', 'raw', 'value', 'map-and-raw');

  function placeHeader(spec: RequestSpec, name: string, value: string, where: Placement): RequestSpec {
    switch (where) {
      case 'map':
        return { ...spec, headers: [...spec.headers, [name, value]] };
      case 'map-capitalised':
        return { ...spec, headers: [...spec.headers, [name.replace(/^./, (first) => first.toUpperCase()), value]] };
      case 'raw':
        return { ...spec, rawHeaders: [...spec.rawHeaders, { key: name, raw_value: Buffer.from(value, 'latin1') }] };
      case 'value':
        return { ...spec, rawHeaders: [...spec.rawHeaders, { key: name, value }] };
      case 'map-and-raw':
        return placeHeader(placeHeader(spec, name, value, 'map'), name, value, 'raw');
    }
  }

  const emptySpec = (path: string): RequestSpec => ({ path, pathInHeaderOnly: false, headers: [], rawHeaders: [], certificate: '', source: '192.0.2.10' });

  const targetTokenRequest = fc
    .constantFrom(...TOKEN_DEVICES, 'no-token')
    .chain((id) => fc.tuple(pathFor(anyTenant, controllerIdOrOther(id)), authorizationValue('TargetToken', TOKENS[id] ?? TOKENS['device-01']), placement))
    .map(([path, value, where]) => placeHeader(emptySpec(path), 'authorization', value, where));

  const gatewayTokenRequest = fc
    .tuple(
      pathFor(anyTenant, fc.oneof(fc.constantFrom(...TOKEN_DEVICES, ...OTHER_DEVICES), fc.string({ unit: fc.constantFrom(...'abc-_.019'), minLength: 1, maxLength: 20 }))),
      fc.oneof({ arbitrary: fc.constant(GATEWAY_KEY), weight: 4 }, { arbitrary: fc.constantFrom(`${GATEWAY_KEY}x`, TOKENS['device-01']), weight: 1 }),
      placement,
    )
    .chain(([path, key, where]) => authorizationValue('GatewayToken', key).map((value) => placeHeader(emptySpec(path), 'authorization', value, where)));

  const certificateRequest = fc
    .tuple(
      fc.constantFrom('device01', 'device01', 'device02', 'untrusted', 'twoNames', 'ca') as fc.Arbitrary<keyof typeof certificates>,
      fc.constantFrom('peer', 'peer', 'xfcc', 'both', 'xfcc-untrusted-leaf'),
      sometimes(15, stringEdits(fc.constantFrom('%', 'A', '%0A', '-', '')), []),
    )
    .chain(([name, delivery, edits]) => {
      const id = name === 'device02' ? 'device-02' : 'device-01';
      return pathFor(defaultTenant, controllerIdOrOther(id)).map((path) => {
        const pem = certificates[name].pem;
        const peer = applyEdits(envoyEncodePem(pem), edits);
        let spec = emptySpec(path);
        if (delivery === 'peer' || delivery === 'both') {
          spec = { ...spec, certificate: peer };
        }
        if (delivery === 'xfcc' || delivery === 'both') {
          spec = placeHeader(spec, 'x-forwarded-client-cert', xfccElementLikeEnvoy(pem, [deviceCa.pem]), 'map');
        }
        if (delivery === 'xfcc-untrusted-leaf') {
          spec = placeHeader({ ...spec, certificate: peer }, 'x-forwarded-client-cert', xfccElementLikeEnvoy(certificates.untrusted.pem, []), 'map');
        }
        return spec;
      });
    });

  const trustedSource = fc.oneof(
    fc.nat({ max: 255 }).map((host) => `10.9.8.${host}`),
    fc.nat({ max: 255 }).map((host) => `::ffff:10.9.8.${host}`),
    fc.nat({ max: 0xffff }).map((host) => `2001:db8:9::${host.toString(16)}`),
  );
  const untrustedSource = fc.oneof(fc.constantFrom('10.9.9.1', '192.0.2.10', '::1', '2001:db8:8::1', '10.9.8.256', ''), fc.ipV4(), fc.ipV6());

  const proxyRequest = fc
    .tuple(
      fc.constantFrom('device-01', 'device-02', 'never-registered'),
      fc.oneof({ arbitrary: trustedSource, weight: 4 }, { arbitrary: untrustedSource, weight: 1 }),
      fc.oneof(
        { arbitrary: fc.constantFrom(PROXY_AUTHORITY, PROXY_AUTHORITY.toUpperCase(), `other, ${PROXY_AUTHORITY}`), weight: 4 },
        { arbitrary: fc.constantFrom('fuzz:proxy:authority', 'not-trusted'), weight: 1 },
      ),
      // hawkBit reads indexed authority headers from -0 or -1 up to the first gap, so -2 alone is never read.
      fc.constantFrom('x-authority', 'x-authority', 'x-authority-0', 'x-authority-1', 'x-authority-1', 'x-authority-2'),
      placement,
    )
    .chain(([id, source, authority, authorityHeader, where]) =>
      pathFor(defaultTenant, controllerIdOrOther(id)).map((path) => {
        const spec = placeHeader({ ...emptySpec(path), source }, 'x-controller-id', id, where);
        return placeHeader(spec, authorityHeader, authority, 'map');
      }),
    );

  const junkHeaderName = fc.oneof(fc.constantFrom(...JUNK_HEADER_NAMES), anyString(12));
  const arbitraryRequest: fc.Arbitrary<RequestSpec> = fc.record({
    path: fc.oneof(anyString(100), pathFor(anyTenant, fc.constantFrom(...TOKEN_DEVICES, ...OTHER_DEVICES))),
    pathInHeaderOnly: fc.boolean(),
    headers: fc.array(fc.tuple(junkHeaderName, anyString(60)), { maxLength: 6 }),
    rawHeaders: fc.array(
      fc.oneof(
        fc.record({ key: junkHeaderName, raw_value: fc.uint8Array({ maxLength: 60 }).map((bytes) => Buffer.from(bytes)) }),
        fc.record({ key: junkHeaderName, value: anyString(60) }),
      ),
      { maxLength: 4 },
    ),
    certificate: fc.oneof(fc.constant(''), anyString(200), fc.constantFrom('-----BEGIN%20CERTIFICATE-----%0A', '%')),
    source: fc.option(fc.oneof(anyString(40), trustedSource, untrustedSource), { nil: undefined }),
  });

  /** Junk added on top of a near-valid request: extra headers and `header_map` entries, another path source. */
  const perturbation = fc.record({
    headers: sometimes(20, fc.array(fc.tuple(junkHeaderName, anyString(40)), { minLength: 1, maxLength: 3 }), []),
    rawHeaders: sometimes(
      20,
      fc.array(fc.record({ key: junkHeaderName, raw_value: fc.uint8Array({ maxLength: 40 }).map((bytes) => Buffer.from(bytes)) }), { minLength: 1, maxLength: 3 }),
      [],
    ),
    pathInHeaderOnly: sometimes(10, fc.constant(true), false),
  });

  const request: fc.Arbitrary<RequestSpec> = fc
    .tuple(
      fc.oneof(
        { arbitrary: targetTokenRequest, weight: 3 },
        { arbitrary: gatewayTokenRequest, weight: 3 },
        { arbitrary: certificateRequest, weight: 3 },
        { arbitrary: proxyRequest, weight: 4 },
        { arbitrary: arbitraryRequest, weight: 3 },
      ),
      perturbation,
    )
    .map(([spec, extra]) => ({
      ...spec,
      // Junk goes first, so the request's own headers win in the `headers` map.
      headers: [...extra.headers, ...spec.headers],
      rawHeaders: [...spec.rawHeaders, ...extra.rawHeaders],
      pathInHeaderOnly: spec.pathInHeaderOnly || extra.pathInHeaderOnly,
    }));

  it('allows only valid credentials', async function () {
    this.timeout(0);
    const allowsByCredential = new Map<string, number>();

    await fc.assert(
      fc.asyncProperty(request, async (spec) => {
        const message = toMessage(spec);
        const response = await service.check(message);
        const { grpc, http } = outcome(response);
        expect([0, 7, 16], 'gRPC code').to.include(grpc);
        if (grpc !== 0) {
          // 503 means the service could not decide, which no input may cause while the store is up.
          expect([401, 403], 'HTTP status of a deny').to.include(http);
          return;
        }
        expect(unsafeIdentityHeaders(message, response), 'client-sent identity headers left in place').to.deep.equal([]);
        const found = credentialOfAllow(message, response);
        expect(found, 'allow without a valid credential').to.have.property('credential');
        const { credential } = found as { credential: string };
        allowsByCredential.set(credential, (allowsByCredential.get(credential) ?? 0) + 1);
      }),
      fuzzParameters(serviceRuns),
    );

    // The near-valid requests must reach every credential's success path, or the property proves nothing.
    // At the 200 cases of `npm test`, each credential allowed 7 to 19 times in 15 trial runs.
    if (!replaying) {
      for (const credential of ['target token', 'gateway key', 'certificate', 'trusted proxy headers']) {
        expect(allowsByCredential.get(credential) ?? 0, `allows by ${credential}`).to.be.greaterThan(0);
      }
    }
  });

  it('keeps serving after fuzzing', async () => {
    expect(await service.health()).to.equal('SERVING');
    const response = await service.check(envoyRequest('/DEFAULT/controller/v1/device-01', { authorization: `TargetToken ${TOKENS['device-01']}` }));
    expect(outcome(response).grpc).to.equal(0);
    const errors = service.log.records.filter((record) => record.level === 'error' || record.level === 'fatal');
    expect(errors, 'error log lines').to.deep.equal([]);
  });
});
