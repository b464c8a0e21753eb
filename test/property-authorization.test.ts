import { expect } from 'chai';
import fc from 'fast-check';

import { AUTHORIZATION_MAX_LENGTH, parseAuthorization, type AuthorizationHeader } from '../src/auth/authorization-header.js';
import { RequestHeaders } from '../src/auth/request.js';
import { anyString, applyEdits, fuzzParameters, replaying, stringEdits } from './helpers/fuzz.js';

/** RFC 9110 `tchar`, the characters of an auth-scheme. */
const TCHARS = [..."!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"];
/** RFC 9110 token68 characters before the trailing `=` padding. */
const TOKEN68_CHARS = [...'-._~+/0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'];

/** `scheme 1*SP token68` with optional spaces and tabs around it, as the reference for what must parse. */
const CREDENTIALS = /^[ \t]*([!#$%&'*+\-.^_`|~0-9A-Za-z]+) +([A-Za-z0-9\-._~+/]+=*)[ \t]*$/;

const scheme = fc.oneof(
  fc.constantFrom('TargetToken', 'targettoken', 'GATEWAYTOKEN', 'GatewayToken', 'Bearer', 'Basic'),
  fc.string({ unit: fc.constantFrom(...TCHARS), minLength: 1, maxLength: 12 }),
);
const token68 = fc
  .tuple(fc.string({ unit: fc.constantFrom(...TOKEN68_CHARS), minLength: 1, maxLength: 64 }), fc.nat({ max: 3 }))
  .map(([body, padding]) => body + '='.repeat(padding));
const optionalWhitespace = fc.string({ unit: fc.constantFrom(' ', '\t'), maxLength: 3 });

interface Credentials {
  value: string;
  scheme: string;
  credential: string;
}

/** Values of the form `OWS scheme 1*SP token68 OWS`, which must parse to credentials. */
const validCredentials: fc.Arbitrary<Credentials> = fc
  .tuple(optionalWhitespace, scheme, fc.integer({ min: 1, max: 4 }), token68, optionalWhitespace)
  .map(([before, name, spaces, credential, after]) => ({ value: `${before}${name}${' '.repeat(spaces)}${credential}${after}`, scheme: name, credential }));

/** Characters that break the grammar where they are put, or sit on its edges. */
const AUTHORIZATION_TOKENS = [',', ' ', '\t', '=', '"', '\u0000', '\r', '\n', 'ä', '\u00a0', ':', ';', '(', 'A', '+', '/', '%2C'];

const authorizationValue: fc.Arbitrary<string> = fc.oneof(
  validCredentials.map((credentials) => credentials.value),
  fc
    .tuple(validCredentials, stringEdits(fc.oneof(fc.constantFrom(...AUTHORIZATION_TOKENS), anyString(3))))
    .map(([credentials, edits]) => applyEdits(credentials.value, edits)),
  anyString(100),
  fc.string({ unit: fc.constantFrom(...TCHARS, ...AUTHORIZATION_TOKENS), maxLength: 40 }),
  fc.tuple(scheme, token68).map(([name, credential]) => `${name} ${credential}`.padEnd(AUTHORIZATION_MAX_LENGTH + 1, '=')),
);

/** Headers with 0 to 3 Authorization values under names of any case, and a few other headers. */
const headerSet = fc.record({
  authorization: fc.array(fc.tuple(fc.constantFrom('authorization', 'Authorization', 'AUTHORIZATION'), authorizationValue), { maxLength: 3 }),
  others: fc.array(fc.tuple(fc.constantFrom('x-request-id', 'proxy-authorization', 'www-authenticate', 'authorization2'), anyString(20)), { maxLength: 3 }),
});

function buildHeaders(set: { authorization: [string, string][]; others: [string, string][] }): RequestHeaders {
  const headers = new RequestHeaders();
  for (const [name, value] of [...set.others, ...set.authorization]) {
    headers.add(name, value);
  }
  return headers;
}

/** Checks what every result must satisfy, against the values the header arrived with. */
function checkResult(result: AuthorizationHeader, values: readonly string[]): void {
  if (values.length === 0) {
    expect(result).to.deep.equal({ kind: 'absent' });
    return;
  }
  if (values.length > 1) {
    expect(result).to.deep.equal({ kind: 'invalid', reason: 'authorization_repeated' });
    return;
  }

  const value = values[0];
  if (result.kind === 'credentials') {
    expect(value, 'a value with a comma').not.to.include(',');
    expect(value.length).to.be.at.most(AUTHORIZATION_MAX_LENGTH);
    const match = CREDENTIALS.exec(value);
    expect(match, `credentials from '${value}'`).not.to.equal(null);
    expect(result.scheme).to.equal(match![1].toLowerCase());
    expect(result.credential).to.equal(match![2]);
  } else {
    const wellFormed = value.length <= AUTHORIZATION_MAX_LENGTH && CREDENTIALS.test(value);
    expect(wellFormed, `'${value}' is scheme and token68 but did not parse`).to.equal(false);
    expect(result.kind).to.equal('invalid');
    if (result.kind === 'invalid') {
      expect(['authorization_malformed', 'authorization_repeated']).to.include(result.reason);
    }
  }
}

describe('Authorization parser properties', () => {
  it('returns credentials only for token68', () => {
    let parsedCredentials = 0;
    fc.assert(
      fc.property(headerSet, (set) => {
        const headers = buildHeaders(set);
        const result = parseAuthorization(headers);
        checkResult(result, headers.all('authorization'));
        parsedCredentials += result.kind === 'credentials' ? 1 : 0;
      }),
      fuzzParameters(),
    );
    if (!replaying) {
      expect(parsedCredentials, 'inputs that parsed to credentials').to.be.greaterThan(0);
    }
  });

  it('parses every scheme and token68', () => {
    fc.assert(
      fc.property(validCredentials, (credentials) => {
        const headers = new RequestHeaders();
        headers.add('authorization', credentials.value);
        expect(parseAuthorization(headers)).to.deep.equal({
          kind: 'credentials',
          scheme: credentials.scheme.toLowerCase(),
          credential: credentials.credential,
        });
      }),
      fuzzParameters(),
    );
  });

  it('rejects non-ASCII scheme and token characters', () => {
    // Each of these code units is an allowed ASCII character plus a multiple of 128.
    for (const value of ['TargetTok\u00e5n abc', 'TargetToken ab\u00e4c', 'TargetToken abc\u0141', 'TargetToken \u2d41bc', 'Target\u00f4oken abc']) {
      const parsed = parseAuthorization(buildHeaders({ authorization: [['authorization', value]], others: [] }));
      expect(parsed, JSON.stringify(value)).to.deep.equal({ kind: 'invalid', reason: 'authorization_malformed' });
    }
  });

  it('rejects any value with a comma', () => {
    fc.assert(
      fc.property(fc.oneof(validCredentials.map((credentials) => credentials.value), authorizationValue), fc.nat(), fc.string({ maxLength: 3 }), (value, position, extra) => {
        const at = position % (value.length + 1);
        const withComma = `${value.slice(0, at)},${extra}${value.slice(at)}`;
        const headers = new RequestHeaders();
        headers.add('authorization', withComma);
        expect(parseAuthorization(headers).kind).to.equal('invalid');
      }),
      fuzzParameters(),
    );
  });
});
